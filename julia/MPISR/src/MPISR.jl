"""
    MPISR

Restoration of MPI system matrices with pympisr's ONNX models inside Julia: load a model
([`load_model`](@ref)), restore complex data in Julia's array order ([`restore`](@ref),
[`restore_images`](@ref)), restore an `MPIFile`'s system matrix
([`restore_system_matrix`](@ref)) and reconstruct with MPIReco through
[`RestoredSystemMatrix`](@ref). The ONNX graphs are end to end (normalisation, padding,
network, cropping and rescaling happen inside), so this package converts between
complex Julia arrays and the float32 (B, 2, [D,] H, W) tensors (see `layout.jl`),
supplies the optional `sigma` (noise level) and `mask` inputs, derives the restored
grid from the model's `grid_rule` and runs a simple safety step after the network.
"""
module MPISR

using MPIFiles
using MPIReco
using NPZ
using ONNXRunTime

export SRModel, load_model, needs_mask, needs_noise, noise_input, model_task
export model_scale_factor, model_grid_rule, output_grid_size, restored_grid, MAX_IR_VERSION
export restore, restore_images, restore_system_matrix, safety_step!, component_noise
export onnx_tensor, onnx_mask, complex_images, mask_images
export check_golden, golden_paths
export RestoredSystemMatrix

include("metadata.jl")
include("layout.jl")
include("model.jl")
include("restore.jl")
include("mpifile.jl")
include("golden.jl")
include("mpireco.jl")

end
