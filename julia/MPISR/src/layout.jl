# The column-major recipe (DESIGN section 8).
#
# A pympisr network sees one frequency component as a float32 tensor (B, 2, [D,] H, W)
# in C order: channel 1 real, channel 2 imaginary, D = Nz, H = Ny, W = Nx. In Julia a
# system-matrix component is a complex array (Nx, Ny, Nz) (x fastest, MDF voxel order),
# and a batch of them is (Nx, Ny, Nz, B).
#
# Step 1: the bytes of the C-order tensor, read column-major, form the Julia array
#         raw = (Nx, Ny, Nz, 2, B) with raw[x, y, z, 1, b] = real(component_b[x, y, z])
#         and raw[x, y, z, 2, b] = imag(...). For 2D models the z axis is absent:
#         raw = (Nx, Ny, 2, B).
# Step 2: ONNXRunTime.jl's high-level API (and NPZ.jl for C-order .npy files) present
#         a C-order tensor with the ONNX/numpy shape and numpy indexing, i.e. as the
#         array with all dimensions reversed: tensor = permutedims(raw, (N, ..., 1)) of
#         size (B, 2, Nz, Ny, Nx). ONNXRunTime.jl converts this array back to C memory
#         itself (it reverses the dimensions again), so the model receives exactly the
#         tensor pympisr's Python side builds.
# Outputs go the same way back: reverse the dimensions of the (B, 2, [D',] H', W')
# output to (W', H', [D',] 2, B) and combine channel 1 + i * channel 2.

"""
    reverse_dims(a)

`a` with the order of all dimensions reversed (Julia view of a C-order array and back).
"""
reverse_dims(a::AbstractArray) = permutedims(a, Tuple(ndims(a):-1:1))

"""
    onnx_tensor(images, dims) -> Array{Float32}

ONNX input `sm` for a batch of complex `images` of size (Nx, Ny, Nz, B): an array of size
(B, 2, Nz, Ny, Nx) for `dims == 3`, or (B, 2, Ny, Nx) for `dims == 2` (then Nz must be 1).
"""
function onnx_tensor(images::AbstractArray{<:Complex, 4}, dims::Integer)
    nx, ny, nz, nbatch = size(images)
    raw = Array{Float32}(undef, nx, ny, nz, 2, nbatch)
    raw[:, :, :, 1, :] .= real.(images)
    raw[:, :, :, 2, :] .= imag.(images)
    return reverse_dims(drop_z(raw, dims))
end

"""
    onnx_mask(mask, dims) -> Array{Float32}

ONNX input `mask` (1 = valid sample) for Bool `mask` of size (Nx, Ny, Nz, B): size
(B, 1, Nz, Ny, Nx) for `dims == 3`, (B, 1, Ny, Nx) for `dims == 2`.
"""
function onnx_mask(mask::AbstractArray{Bool, 4}, dims::Integer)
    nx, ny, nz, nbatch = size(mask)
    raw = reshape(Float32.(mask), nx, ny, nz, 1, nbatch)
    return reverse_dims(drop_z(raw, dims))
end

"""
    complex_images(tensor, dims) -> Array{ComplexF32,4}

Inverse of [`onnx_tensor`](@ref): complex images (Nx, Ny, Nz, B) from an ONNX tensor of
size (B, 2, Nz, Ny, Nx) (`dims == 3`) or (B, 2, Ny, Nx) (`dims == 2`, Nz = 1).
"""
function complex_images(tensor::AbstractArray{<:Real}, dims::Integer)
    ndims(tensor) == dims + 2 ||
        throw(DimensionMismatch(
            "a $(dims)D tensor must have $(dims + 2) axes, got size $(size(tensor))",
        ))
    size(tensor, 2) == 2 ||
        throw(DimensionMismatch(
            "axis 2 must hold real and imaginary part, got size $(size(tensor))",
        ))
    raw = add_z(reverse_dims(tensor), dims)
    return complex.(Float32.(raw[:, :, :, 1, :]), Float32.(raw[:, :, :, 2, :]))
end

"""
    mask_images(tensor, dims) -> Array{Bool,4}

Inverse of [`onnx_mask`](@ref): Bool (Nx, Ny, Nz, B) from a (B, 1, [Nz,] Ny, Nx) tensor.
"""
function mask_images(tensor::AbstractArray{<:Real}, dims::Integer)
    ndims(tensor) == dims + 2 && size(tensor, 2) == 1 ||
        throw(DimensionMismatch(
            "a $(dims)D mask must be (B, 1, spatial...), got size $(size(tensor))",
        ))
    raw = add_z(reverse_dims(tensor), dims)
    return raw[:, :, :, 1, :] .> 0.5f0
end

# (Nx, Ny, 1, C, B) -> (Nx, Ny, C, B) for 2D models
function drop_z(raw::AbstractArray{T, 5}, dims::Integer) where {T}
    dims == 3 && return raw
    dims == 2 || throw(ArgumentError("dims must be 2 or 3, got $dims"))
    nx, ny, nz, nchan, nbatch = size(raw)
    nz == 1 || throw(DimensionMismatch("a 2D model restores planar images, got Nz = $nz"))
    return reshape(raw, nx, ny, nchan, nbatch)
end

# (Nx, Ny, C, B) -> (Nx, Ny, 1, C, B) for 2D models
function add_z(raw::AbstractArray, dims::Integer)
    dims == 3 && return raw
    dims == 2 || throw(ArgumentError("dims must be 2 or 3, got $dims"))
    nx, ny, nchan, nbatch = size(raw)
    return reshape(raw, nx, ny, 1, nchan, nbatch)
end
