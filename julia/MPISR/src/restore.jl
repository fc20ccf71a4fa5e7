# Restoring complex system-matrix data held in Julia's array order.

"""
    restore_images(model, images; mask = nothing, batchsize = 16) -> Array{ComplexF32,4}

Restore complex frequency components `images` of size (Nx, Ny, Nz, M), component by
component in batches of `batchsize`. A 2D model restores every z slice as an image of
its own. `mask` (inpainting models only) is a Bool array, `true` = valid sample, of size
(Nx, Ny, Nz) (shared by all components) or (Nx, Ny, Nz, M). Returns (Nx', Ny', Nz', M)
at the model's output grid (larger than the input for upsampling models).
"""
function restore_images(
    model::SRModel,
    images::AbstractArray{<:Complex, 4};
    mask = nothing,
    batchsize::Integer = 16,
)
    batchsize > 0 || throw(ArgumentError("batchsize must be positive, got $batchsize"))
    nx, ny, nz, ncomp = size(images)
    ncomp > 0 || throw(ArgumentError("no frequency components to restore"))
    data = Array{ComplexF32}(images)
    masks = expand_mask(mask, (nx, ny, nz), ncomp)
    if model.dims == 2
        slices = reshape(data, nx, ny, 1, nz * ncomp)
        slice_masks = masks === nothing ? nothing : reshape(masks, nx, ny, 1, nz * ncomp)
        out = restore_batched(model, slices, slice_masks, batchsize)
        return reshape(out, size(out, 1), size(out, 2), nz, ncomp)
    end
    return restore_batched(model, data, masks, batchsize)
end

"""
    restore(model, S, grid; mask = nothing, batchsize = 16) -> (S_restored, grid_restored)

Restore a system matrix in MPIReco's layout: `S` is complex (voxels x components), each
column one frequency component whose voxels are ordered x fastest on `grid`, the
calibration size (Nx, Ny, Nz) (tuple or vector) or an `MPIFiles.RegularGridPositions`.
Returns `S_restored::Matrix{ComplexF32}` (voxels' x components) and the grid it lives
on: a tuple (Nx', Ny', Nz'), or a `RegularGridPositions` with the same field of view and
centre when `grid` was one. `mask` as in [`restore_images`](@ref).
"""
function restore(
    model::SRModel,
    S::AbstractMatrix{<:Complex},
    grid::Union{Tuple, AbstractVector};
    mask = nothing,
    batchsize::Integer = 16,
)
    shape = grid_shape(grid)
    size(S, 1) == prod(shape) ||
        throw(DimensionMismatch(
            "S has $(size(S, 1)) rows (voxels) but grid $shape has $(prod(shape))",
        ))
    images = reshape(Array{ComplexF32}(S), shape..., size(S, 2))
    restored = restore_images(model, images; mask = mask, batchsize = batchsize)
    out_shape = size(restored)[1:3]
    return reshape(restored, prod(out_shape), size(S, 2)), out_shape
end

function restore(
    model::SRModel,
    S::AbstractMatrix{<:Complex},
    grid::RegularGridPositions;
    mask = nothing,
    batchsize::Integer = 16,
)
    restored, out_shape = restore(
        model,
        S,
        Tuple(grid.shape);
        mask = mask,
        batchsize = batchsize,
    )
    out_grid = RegularGridPositions(
        collect(out_shape),
        collect(grid.fov),
        collect(grid.center),
        collect(grid.sign),
    )
    return restored, out_grid
end

function grid_shape(grid)
    length(grid) == 3 || throw(ArgumentError("grid must be (Nx, Ny, Nz), got $grid"))
    all(n -> n isa Integer && n > 0, grid) ||
        throw(ArgumentError("grid sizes must be positive integers, got $grid"))
    return (Int(grid[1]), Int(grid[2]), Int(grid[3]))
end

# mask: nothing, Bool (Nx, Ny, Nz) or Bool (Nx, Ny, Nz, M) -> nothing or Array{Bool,4}
function expand_mask(mask, shape::NTuple{3, Int}, ncomp::Int)
    mask === nothing && return nothing
    eltype(mask) == Bool ||
        throw(ArgumentError("mask must hold Bool values (true = valid)"))
    if size(mask) == shape
        return repeat(reshape(Array{Bool}(mask), shape..., 1), 1, 1, 1, ncomp)
    elseif size(mask) == (shape..., ncomp)
        return Array{Bool}(mask)
    elseif size(mask) == (prod(shape),)
        return repeat(reshape(Array{Bool}(mask), shape..., 1), 1, 1, 1, ncomp)
    end
    throw(DimensionMismatch(
        "mask of size $(size(mask)) fits neither grid $shape nor ($shape..., $ncomp)",
    ))
end

function restore_batched(
    model::SRModel,
    images::Array{ComplexF32, 4},
    masks,
    batchsize::Integer,
)
    ncomp = size(images, 4)
    out = nothing
    for range in Iterators.partition(1:ncomp, batchsize)
        batch_mask = masks === nothing ?
            nothing :
            onnx_mask(masks[:, :, :, range], model.dims)
        tensor = run_model(
            model,
            onnx_tensor(images[:, :, :, range], model.dims),
            batch_mask,
        )
        restored = complex_images(tensor, model.dims)
        if out === nothing
            out = Array{ComplexF32}(undef, size(restored)[1:3]..., ncomp)
        end
        out[:, :, :, range] .= restored
    end
    return out
end
