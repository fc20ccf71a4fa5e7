# Restoring the system matrix stored in an MPIFile (MDF, Bruker, in-memory MDF).

"""
    restore_system_matrix(model, f::MPIFile, frequencies; bgCorrection = false,
                          mask = nothing, batchsize = 16) -> (S, grid)

Load the rows `frequencies` (`Vector{CartesianIndex{2}}` of (frequency, receive
channel), as returned by `MPIFiles.filterFrequencies`) of the calibration `f` with
`MPIFiles.getSystemMatrix`, restore every component with `model` and return
`S::Matrix{ComplexF32}` (voxels x components, the layout MPIReco uses before
transposing for Kaczmarz; files with several periods give `length(frequencies)` columns
per period) and the `RegularGridPositions` of the restored grid (the calibration's field
of view and centre; more voxels for upsampling models). `mask` is a Bool (Nx, Ny, Nz)
array of valid calibration positions for inpainting models.
"""
function restore_system_matrix(
    model::SRModel,
    f::MPIFile,
    frequencies::AbstractVector{CartesianIndex{2}};
    bgCorrection::Bool = false,
    mask = nothing,
    batchsize::Integer = 16,
)
    isempty(frequencies) &&
        throw(ArgumentError("no frequencies selected: nothing to restore"))
    size_ = calibSize(f)
    (size_ === nothing || ismissing(size_)) &&
        throw(ArgumentError(
            "$(describe(f)): /calibration/size is missing (not a system matrix)",
        ))
    fov = calibFov(f)
    (fov === nothing || ismissing(fov)) &&
        throw(ArgumentError("$(describe(f)): /calibration/fieldOfView is missing"))
    center = calibFovCenter(f)
    center = center === nothing || ismissing(center) ? zeros(3) : collect(center)
    grid = RegularGridPositions(collect(Int, size_), collect(fov), center)
    S = getSystemMatrix(f, collect(frequencies); bgCorrection = bgCorrection)
    return restore(model, S, grid; mask = mask, batchsize = batchsize)
end

"""
    restore_system_matrix(model, f::MPIFile; bgCorrection = false, mask = nothing,
                          batchsize = 16, selection...) -> (frequencies, S, grid)

Select rows like MPIReco does, with `MPIFiles.filterFrequencies(f; selection...)` (keywords
`SNRThresh`, `minFreq`, `maxFreq`, `recChannels`, ...), then restore them as above.
"""
function restore_system_matrix(
    model::SRModel,
    f::MPIFile;
    bgCorrection::Bool = false,
    mask = nothing,
    batchsize::Integer = 16,
    selection...,
)
    frequencies = filterFrequencies(f; selection...)
    S, grid = restore_system_matrix(
        model,
        f,
        frequencies;
        bgCorrection = bgCorrection,
        mask = mask,
        batchsize = batchsize,
    )
    return frequencies, S, grid
end

# The file name for error messages (in-memory files have none).
function describe(f::MPIFile)
    has_path = isdefined(MPIFiles, :filepath) && applicable(MPIFiles.filepath, f)
    path = has_path ? MPIFiles.filepath(f) : nothing
    return path === nothing ? string(typeof(f)) : string(path)
end
