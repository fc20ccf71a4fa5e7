# Restoring complex system-matrix data held in Julia's array order.

"""
    restore_images(model, images; mask = nothing, sigma = nothing, batchsize = 16,
                   keep_below = 1e-3, tol = 1.5) -> Array{ComplexF32,4}

Restore complex frequency components `images` of size (Nx, Ny, Nz, M), component by
component in batches of `batchsize`. A 2D model restores every z slice as an image of
its own. Returns (Nx', Ny', Nz', M) on the model's output grid ([`model_grid_rule`](@ref)).

- `mask` (inpainting models only): Bool, `true` = valid sample, of size (Nx, Ny, Nz)
  (shared by all components) or (Nx, Ny, Nz, M).
- `sigma`: the noise standard deviation of the real and of the imaginary part of each
  component, in the units of `images`: a number (all components) or a vector of length
  M. Required by noise-conditioned models ([`needs_noise`](@ref)); when given, the
  safety step below runs for every model.

Safety step (when `sigma` is given, see [`safety_step!`](@ref)): on models that keep
the grid, a component whose relative noise `sigma_k / max|S_k|` is below `keep_below`
is returned as measured; for denoising models the output is projected onto the ball
`||x - y|| <= sqrt(2m) * sigma_k * tol` around the measured component `y` (m complex
samples). `keep_below = 0` and `tol = Inf` switch the two parts off.
"""
function restore_images(
    model::SRModel,
    images::AbstractArray{<:Complex, 4};
    mask = nothing,
    sigma = nothing,
    batchsize::Integer = 16,
    keep_below::Real = 1.0e-3,
    tol::Real = 1.5,
)
    batchsize > 0 || throw(ArgumentError("batchsize must be positive, got $batchsize"))
    nx, ny, nz, ncomp = size(images)
    ncomp > 0 || throw(ArgumentError("no frequency components to restore"))
    data = Array{ComplexF32}(images)
    masks = expand_mask(mask, (nx, ny, nz), ncomp)
    sigmas = expand_sigma(sigma, ncomp)
    if model.dims == 2
        slices = reshape(data, nx, ny, 1, nz * ncomp)
        slice_masks = masks === nothing ? nothing : reshape(masks, nx, ny, 1, nz * ncomp)
        slice_sigmas = sigmas === nothing ? nothing : repeat(sigmas; inner = nz)
        out = restore_batched(model, slices, slice_masks, slice_sigmas, batchsize)
        restored = reshape(out, size(out, 1), size(out, 2), nz, ncomp)
    else
        restored = restore_batched(model, data, masks, sigmas, batchsize)
    end
    check_output_shape(model, (nx, ny, nz), size(restored)[1:3])
    if sigmas !== nothing
        safety_step!(model, restored, data, sigmas; keep_below = keep_below, tol = tol)
    end
    return restored
end

"""
    safety_step!(model, restored, measured, sigma; keep_below = 1e-3, tol = 1.0)
        -> Vector{Symbol}

The simple parts of pympisr's safety step after the network, applied in place to
`restored` (Nx', Ny', Nz', M) given the `measured` components (Nx, Ny, Nz, M) and their
noise levels `sigma` (length M). Returns what happened to each component: `:kept`
(relative noise `sigma_k / max|y_k|` below `keep_below` on a model whose output grid
is the input grid: the measured component is returned), `:projected` (denoising model
whose residual `||x - y||` exceeded `eps = sqrt(2m) * sigma_k * tol`, m complex samples:
`x <- y + (x - y) * eps / ||x - y||`) or `:network`. pympisr's Python side adds a
data-consistency and SURE-based selection step that is richer than this.
"""
function safety_step!(
    model::SRModel,
    restored::AbstractArray{ComplexF32, 4},
    measured::AbstractArray{<:Complex, 4},
    sigma::AbstractVector{<:Real};
    keep_below::Real = 1.0e-3,
    tol::Real = 1.5,
)
    ncomp = size(measured, 4)
    length(sigma) == ncomp && size(restored, 4) == ncomp ||
        throw(DimensionMismatch("safety step: $ncomp components, $(length(sigma)) sigmas"))
    same_grid = model_grid_rule(model) == "same" && size(restored) == size(measured)
    project = same_grid && model_task(model) == "denoise" && isfinite(tol)
    actions = fill(:network, ncomp)
    same_grid || return actions
    m = prod(size(measured)[1:3])
    for k in 1:ncomp
        y = view(measured, :, :, :, k)
        x = view(restored, :, :, :, k)
        peak = Float64(maximum(abs, y))
        relative = peak > 0 ? Float64(sigma[k]) / peak : Inf
        if relative < keep_below
            x .= y
            actions[k] = :kept
        elseif project
            eps = sqrt(2 * m) * Float64(sigma[k]) * Float64(tol)
            residual = sqrt(sum(i -> abs2(Complex{Float64}(x[i]) - y[i]), eachindex(x, y)))
            if residual > eps
                factor = eps / residual
                x .= ComplexF32.(y .+ (x .- y) .* factor)
                actions[k] = :projected
            end
        end
    end
    return actions
end

"""
    restore(model, S, grid; mask = nothing, sigma = nothing, batchsize = 16,
            keep_below = 1e-3, tol = 1.0) -> (S_restored, grid_restored)

Restore a system matrix in MPIReco's layout: `S` is complex (voxels x components), each
column one frequency component whose voxels are ordered x fastest on `grid`, the
calibration size (Nx, Ny, Nz) (tuple or vector) or an `MPIFiles.RegularGridPositions`.
Returns `S_restored::Matrix{ComplexF32}` (voxels' x components) and the grid it lives
on: a tuple (Nx', Ny', Nz'), or a `RegularGridPositions` when `grid` was one (see
[`restored_grid`](@ref): same centre; same field of view for grid rules "same" and
"scale", the field of view whose voxel centres contain the calibration positions for
"stride"). `mask`, `sigma` (per column of `S`), `keep_below` and `tol` as in
[`restore_images`](@ref).
"""
function restore(
    model::SRModel,
    S::AbstractMatrix{<:Complex},
    grid::Union{Tuple, AbstractVector};
    mask = nothing,
    sigma = nothing,
    batchsize::Integer = 16,
    keep_below::Real = 1.0e-3,
    tol::Real = 1.5,
)
    shape = grid_shape(grid)
    size(S, 1) == prod(shape) ||
        throw(DimensionMismatch(
            "S has $(size(S, 1)) rows (voxels) but grid $shape has $(prod(shape))",
        ))
    images = reshape(Array{ComplexF32}(S), shape..., size(S, 2))
    restored = restore_images(
        model,
        images;
        mask = mask,
        sigma = sigma,
        batchsize = batchsize,
        keep_below = keep_below,
        tol = tol,
    )
    out_shape = size(restored)[1:3]
    return reshape(restored, prod(out_shape), size(S, 2)), out_shape
end

function restore(
    model::SRModel,
    S::AbstractMatrix{<:Complex},
    grid::RegularGridPositions;
    mask = nothing,
    sigma = nothing,
    batchsize::Integer = 16,
    keep_below::Real = 1.0e-3,
    tol::Real = 1.5,
)
    restored, out_shape = restore(
        model,
        S,
        Tuple(grid.shape);
        mask = mask,
        sigma = sigma,
        batchsize = batchsize,
        keep_below = keep_below,
        tol = tol,
    )
    return restored, restored_grid(model, grid, out_shape)
end

"""
    restored_grid(model, grid::RegularGridPositions, out_shape) -> RegularGridPositions

The grid of the restored system matrix: shape `out_shape`, the centre and axis signs of
`grid`; the field of view of `grid` for grid rules "same" and "scale" (positions are
the voxel centres of the finer grid); for "stride" with factor s, along every refined
axis of N > 1 calibration positions the voxel size is the calibration's divided by s
and the field of view is `(s * (N - 1) + 1)` such voxels, so that the calibration
positions are every s-th position of the restored grid.
"""
function restored_grid(model::SRModel, grid::RegularGridPositions, out_shape)
    in_shape = Tuple(Int.(collect(grid.shape)))
    length(in_shape) == 3 ||
        throw(ArgumentError("a 3-axis calibration grid is needed, got shape $in_shape"))
    out = Tuple(Int.(collect(out_shape)))
    check_output_shape(model, in_shape, out)
    fov = collect(grid.fov)
    s = model_scale_factor(model)
    if model_grid_rule(model) == "stride"
        for a in 1:model.dims
            if in_shape[a] > 1
                fov[a] = fov[a] / (in_shape[a] * s) * out[a]
            end
        end
    end
    return RegularGridPositions(collect(out), fov, collect(grid.center), collect(grid.sign))
end

# The output grid must follow the model's grid rule on its spatial axes (x, y for 2D
# models, x, y, z for 3D models); other axes are unchanged.
function check_output_shape(model::SRModel, in_shape::NTuple{3, Int}, out_shape)
    expected = ntuple(
        a -> a <= model.dims ? output_grid_size(model, in_shape[a]) : in_shape[a],
        3,
    )
    Tuple(out_shape) == expected ||
        throw(DimensionMismatch(
            "$(model.path): output grid $(Tuple(out_shape)) for input grid $in_shape " *
                "does not follow grid_rule \"$(model_grid_rule(model))\" with scale factor " *
                "$(model_scale_factor(model)) (expected $expected)",
        ))
    return nothing
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

# sigma: nothing, a number or a vector of length M -> nothing or Vector{Float64}
function expand_sigma(sigma, ncomp::Int)
    sigma === nothing && return nothing
    values = sigma isa Real ? fill(Float64(sigma), ncomp) : Float64.(vec(collect(sigma)))
    length(values) == ncomp ||
        throw(DimensionMismatch("$(length(values)) noise levels for $ncomp components"))
    all(v -> isfinite(v) && v >= 0, values) ||
        throw(ArgumentError("noise levels must be finite and non-negative"))
    return values
end

function restore_batched(
    model::SRModel,
    images::Array{ComplexF32, 4},
    masks,
    sigmas,
    batchsize::Integer,
)
    ncomp = size(images, 4)
    out = nothing
    for range in Iterators.partition(1:ncomp, batchsize)
        batch_mask = masks === nothing ?
            nothing :
            onnx_mask(masks[:, :, :, range], model.dims)
        batch_sigma = sigmas === nothing ? nothing : sigmas[range]
        tensor = run_model(
            model,
            onnx_tensor(images[:, :, :, range], model.dims),
            batch_mask;
            sigma = batch_sigma,
        )
        restored = complex_images(tensor, model.dims)
        if out === nothing
            out = Array{ComplexF32}(undef, size(restored)[1:3]..., ncomp)
        end
        out[:, :, :, range] .= restored
    end
    return out
end
