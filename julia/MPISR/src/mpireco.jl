# Plugging restoration into MPIReco's system-matrix loading step.
#
# MPIReco's single-patch algorithm obtains (frequencies, S, grid) from
# `process(AbstractMPIRecoAlgorithm, reco.sfLoad, reco.sf)`; the "SinglePatch" plan
# wraps `sfLoad` in a result cache whose `param` a user may replace. Giving it a
# `RestoredSystemMatrix` makes every reconstruction of the plan use the restored matrix.

"""
    RestoredSystemMatrix(; model, freqFilter = SNRThresholdFrequencyFilterParameter(),
                         bgCorrection = false, mask = nothing, batchSize = 16)

An `AbstractSystemMatrixLoadingParameter` that loads the rows selected by `freqFilter`
(any MPIReco frequency filter parameter) from the calibration file and restores them
with the pympisr ONNX `model` (a path to a `.onnx` file or an [`SRModel`](@ref)) before
MPIReco reconstructs. `mask` (Bool (Nx, Ny, Nz), `true` = valid) is for inpainting
models. Use it in a plan:

```julia
plan = MPIRecoPlan("SinglePatch")
plan.parameter.reco.sfLoad.param = RestoredSystemMatrix(model = "dncnn2d.onnx",
    freqFilter = SNRThresholdFrequencyFilterParameter(SNRThresh = 5.0, minFreq = 80e3))
```
"""
Base.@kwdef struct RestoredSystemMatrix{F <: AbstractFrequencyFilterParameter} <:
    AbstractSystemMatrixLoadingParameter
    model::Union{String, SRModel}
    freqFilter::F = SNRThresholdFrequencyFilterParameter()
    bgCorrection::Bool = false
    mask::Union{Nothing, Array{Bool, 3}} = nothing
    batchSize::Int = 16
end

resolve_model(model::SRModel) = model
resolve_model(path::String) = load_model(path)

"""
    process(::Type{<:AbstractMPIRecoAlgorithm}, p::RestoredSystemMatrix, sf::MPIFile)
        -> (frequencies::Vector{CartesianIndex{2}}, S::Matrix{ComplexF32}, grid)

Select frequencies with `p.freqFilter`, load and restore them; `S` is voxels x
frequencies on the restored `grid::RegularGridPositions`.
"""
function MPIReco.process(
    t::Type{<:AbstractMPIRecoAlgorithm},
    p::RestoredSystemMatrix,
    sf::MPIFile,
)
    frequencies = collect(
        CartesianIndex{2},
        vec(collect(MPIReco.process(t, p.freqFilter, sf))),
    )
    S, grid = restore_system_matrix(
        resolve_model(p.model),
        sf,
        frequencies;
        bgCorrection = p.bgCorrection,
        mask = p.mask,
        batchsize = p.batchSize,
    )
    return frequencies, S, grid
end

# MPIReco's single-patch algorithm asks the loading parameter for an extra linear
# operator (a sparsifying transform for compressed matrices); a restored dense matrix
# has none.
MPIReco.getLinearOperator(
    ::MPIReco.SinglePatchReconstructionAlgorithm,
    ::MPIReco.SinglePatchReconstructionParameter{<:RestoredSystemMatrix},
) = nothing
