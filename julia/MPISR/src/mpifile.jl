# Restoring the system matrix stored in an MPIFile (MDF, Bruker, in-memory MDF).

const NOISE_MODES = (:auto, :background, :snr, :none)

"""
    restore_system_matrix(model, f::MPIFile, frequencies; bgCorrection = false,
                          tfCorrection = rxHasTransferFunction(f),
                          numPeriodAverages = 1, numPeriodGrouping = 1,
                          loadasreal = false, mask = nothing, noise = :auto,
                          keep_below = 1e-3, tol = 1.0, batchsize = 16) -> (S, grid)

Load the rows `frequencies` (`Vector{CartesianIndex{2}}` of (frequency, receive
channel), as returned by `MPIFiles.filterFrequencies`) of the calibration `f` with
`MPIFiles.getSystemMatrix` (passing `bgCorrection`, `tfCorrection`,
`numPeriodAverages` and `numPeriodGrouping` as MPIReco's dense loader does; with
grouping > 1 the rows index the grouped spectrum), restore every component with `model`
and return `S::Matrix{ComplexF32}` (voxels x components, the layout MPIReco uses before
transposing for Kaczmarz; files with several periods give `length(frequencies)` columns
per period) and the `RegularGridPositions` of the restored grid ([`restored_grid`](@ref)).
With `loadasreal = true`, `S` is `Matrix{Float32}` with each column `[real; imag]`
(MPIReco's `loadasreal` layout).

- `mask`: Bool (Nx, Ny, Nz), `true` = valid calibration position (inpainting models).
- `noise`: the per-component noise level used as the model's `sigma` input and by the
  safety step (see [`component_noise`](@ref)): `:auto` (background frames if the file
  has them, else the calibration SNR, else none), `:background`, `:snr`, `:none`, or a
  number / vector (one per column of `S`) in the units of `S`.
- `keep_below`, `tol`: the safety step of [`restore_images`](@ref).
"""
function restore_system_matrix(
    model::SRModel,
    f::MPIFile,
    frequencies::AbstractVector{CartesianIndex{2}};
    bgCorrection::Bool = false,
    tfCorrection::Union{Bool, Nothing} = nothing,
    numPeriodAverages::Integer = 1,
    numPeriodGrouping::Integer = 1,
    loadasreal::Bool = false,
    mask = nothing,
    noise = :auto,
    keep_below::Real = 1.0e-3,
    tol::Real = 1.0,
    batchsize::Integer = 16,
)
    isempty(frequencies) &&
        throw(ArgumentError("no frequencies selected: nothing to restore"))
    tf = tfCorrection === nothing ? rxHasTransferFunction(f) : tfCorrection
    grid = calibration_grid(f)
    S = getSystemMatrix(
        f,
        collect(frequencies);
        bgCorrection = bgCorrection,
        tfCorrection = tf,
        numPeriodAverages = numPeriodAverages,
        numPeriodGrouping = numPeriodGrouping,
    )
    sigma = component_noise(
        f,
        frequencies,
        S;
        noise = noise,
        tfCorrection = tf,
        numPeriodAverages = numPeriodAverages,
        numPeriodGrouping = numPeriodGrouping,
    )
    if needs_noise(model) && sigma === nothing
        throw(ArgumentError(
            "$(describe(f)): $(basename(model.path)) needs the noise level of each " *
                "component, but the file has neither background frames nor a calibration " *
                "SNR usable here; pass noise = <number or vector>",
        ))
    end
    restored, out_grid = restore(
        model,
        S,
        grid;
        mask = mask,
        sigma = sigma,
        batchsize = batchsize,
        keep_below = keep_below,
        tol = tol,
    )
    return (loadasreal ? as_real(restored) : restored), out_grid
end

"""
    restore_system_matrix(model, f::MPIFile; bgCorrection = false, tfCorrection,
                          numPeriodAverages = 1, numPeriodGrouping = 1,
                          loadasreal = false, mask = nothing, noise = :auto,
                          keep_below = 1e-3, tol = 1.0, batchsize = 16, selection...)
        -> (frequencies, S, grid)

Select rows like MPIReco does, with `MPIFiles.filterFrequencies(f; selection...)`
(keywords `SNRThresh`, `minFreq`, `maxFreq`, `recChannels`, ...; the period grouping is
passed on too), then restore them as above.
"""
function restore_system_matrix(
    model::SRModel,
    f::MPIFile;
    bgCorrection::Bool = false,
    tfCorrection::Union{Bool, Nothing} = nothing,
    numPeriodAverages::Integer = 1,
    numPeriodGrouping::Integer = 1,
    loadasreal::Bool = false,
    mask = nothing,
    noise = :auto,
    keep_below::Real = 1.0e-3,
    tol::Real = 1.0,
    batchsize::Integer = 16,
    selection...,
)
    frequencies = filterFrequencies(
        f;
        numPeriodAverages = numPeriodAverages,
        numPeriodGrouping = numPeriodGrouping,
        selection...,
    )
    S, grid = restore_system_matrix(
        model,
        f,
        frequencies;
        bgCorrection = bgCorrection,
        tfCorrection = tfCorrection,
        numPeriodAverages = numPeriodAverages,
        numPeriodGrouping = numPeriodGrouping,
        loadasreal = loadasreal,
        mask = mask,
        noise = noise,
        keep_below = keep_below,
        tol = tol,
        batchsize = batchsize,
    )
    return frequencies, S, grid
end

# The calibration grid of `f` (size, field of view, centre) as RegularGridPositions.
function calibration_grid(f::MPIFile)
    size_ = calibSize(f)
    (size_ === nothing || ismissing(size_)) &&
        throw(ArgumentError(
            "$(describe(f)): /calibration/size is missing (not a system matrix)",
        ))
    fov = calibFov(f)
    (fov === nothing || ismissing(fov)) &&
        throw(ArgumentError("$(describe(f)): /calibration/fieldOfView is missing"))
    center = calibFovCenter(f)
    center = center === nothing || ismissing(center) ? zeros(length(fov)) : center
    fov_ = Float64.(collect(fov))
    return RegularGridPositions(collect(Int, size_), fov_, Float64.(collect(center)))
end

# MPIReco's `loadasreal` layout: column l becomes [real(S[:, l]); imag(S[:, l])].
as_real(S::AbstractMatrix{<:Complex}) = vcat(Float32.(real.(S)), Float32.(imag.(S)))

"""
    component_noise(f, frequencies, S; noise = :auto, tfCorrection = false,
                    numPeriodAverages = 1, numPeriodGrouping = 1)
        -> Union{Nothing, Vector{Float64}}

The noise standard deviation of the real and of the imaginary part of every column of
`S` (the system matrix loaded for `frequencies`, in its units), as chosen by `noise`:

- `:background`: from the file's background frames (MDF files stored in the frequency
  domain with at least two background frames): per row and period, the standard
  deviation over the background frames of the real and of the imaginary part, combined
  as `sqrt((var(re) + var(im)) / 2)`; divided by `|tf|` when the rows are corrected by
  the transfer function. Drift between background frames counts as noise.
- `:snr`: from MPIFiles' calibration SNR, defined as `max|S_k| / mean|diff(S_bg)|`:
  the mean modulus of the difference of two complex Gaussian samples with per-part
  standard deviation `sigma` is `sigma * sqrt(pi)`, so `sigma_k = max|S_k| /
  (SNR_k * sqrt(pi))` (a missing or non-positive SNR counts as 1).
- `:auto`: `:background` when possible, else `:snr` when the file has an SNR, else
  `nothing`. `:none`: `nothing`.
- a number or vector (one value per column of `S`): used as given.

Period grouping or averaging (> 1) changes the rows; only user-supplied values are
used then (`:auto` gives `nothing`, `:background` and `:snr` throw).
"""
function component_noise(
    f::MPIFile,
    frequencies::AbstractVector{CartesianIndex{2}},
    S::AbstractMatrix;
    noise = :auto,
    tfCorrection::Bool = false,
    numPeriodAverages::Integer = 1,
    numPeriodGrouping::Integer = 1,
)
    ncol = size(S, 2)
    if noise isa Real || noise isa AbstractArray
        values = noise isa Real ? fill(Float64(noise), ncol) : Float64.(vec(collect(noise)))
        length(values) == ncol ||
            throw(DimensionMismatch(
                "noise: $(length(values)) values for $ncol system-matrix columns",
            ))
        return values
    end
    noise in NOISE_MODES ||
        throw(ArgumentError("noise must be one of $NOISE_MODES, a number or a vector"))
    noise == :none && return nothing
    grouped = numPeriodAverages != 1 || numPeriodGrouping != 1
    if grouped
        noise == :auto && return nothing
        throw(ArgumentError(
            "noise = :$noise cannot be estimated with period averaging or grouping; " *
                "pass the noise level of each column",
        ))
    end
    if noise in (:auto, :background)
        sigma = background_noise(f, frequencies, ncol; tfCorrection = tfCorrection)
        sigma === nothing || return sigma
        noise == :background &&
            throw(ArgumentError(
                "$(describe(f)): no background frames to estimate the noise from " *
                    "(needs an MDF stored in the frequency domain with >= 2 of them)",
            ))
    end
    sigma = snr_noise(f, frequencies, S)
    sigma === nothing || return sigma
    noise == :snr && throw(ArgumentError("$(describe(f)): the file has no calibration SNR"))
    return nothing
end

# Per-part standard deviation of complex samples: sqrt((var(re) + var(im)) / 2).
function part_std(values::AbstractVector{<:Complex})
    n = length(values)
    n >= 2 || throw(ArgumentError("need at least two samples for a standard deviation"))
    mr = sum(real, values) / n
    mi = sum(imag, values) / n
    vr = sum(v -> (real(v) - mr)^2, values) / (n - 1)
    vi = sum(v -> (imag(v) - mi)^2, values) / (n - 1)
    return sqrt((vr + vi) / 2)
end

function background_noise(
    f::MPIFile,
    frequencies::AbstractVector{CartesianIndex{2}},
    ncol::Integer;
    tfCorrection::Bool = false,
)
    f isa Union{MPIFiles.MDFFileV2, MDFv2InMemory} || return nothing
    measIsFourierTransformed(f) === true || return nothing
    measIsSparsityTransformed(f) === true && return nothing
    bg = measBGFrameIdx(f)
    length(bg) >= 2 || return nothing
    raw = MPIFiles.measDataRaw(f)
    fast = measIsFastFrameAxis(f) === true
    rows = MPIFiles.rowsToSubsampledRows(f, collect(frequencies))
    nrows = length(rows)
    nperiods = fast ? size(raw, 4) : size(raw, 3)
    ncol == nrows * nperiods || return nothing
    # one (K, C, J) array per background frame
    frames = [fast ? Array(raw[b, :, :, :]) : Array(raw[:, :, :, b]) for b in bg]
    sigma = zeros(Float64, ncol)
    for j in 1:nperiods, (i, row) in enumerate(rows)
        samples = [ComplexF64(frame[row[1], row[2], j]) for frame in frames]
        sigma[i + (j - 1) * nrows] = part_std(samples)
    end
    if tfCorrection && !measIsTFCorrected(f)
        tf = rxTransferFunction(f)
        if tf !== nothing && !ismissing(tf)
            for l in 1:ncol
                sigma[l] /= abs(tf[rows[mod1(l, nrows)]])
            end
        end
    end
    return sigma
end

function snr_noise(
    f::MPIFile,
    frequencies::AbstractVector{CartesianIndex{2}},
    S::AbstractMatrix,
)
    snr = calibSNR(f)
    (snr === nothing || ismissing(snr) || isempty(snr)) && return nothing
    rows = MPIFiles.rowsToSubsampledRows(f, collect(frequencies))
    nrows = length(rows)
    ncol = size(S, 2)
    ncol % nrows == 0 || return nothing
    sigma = zeros(Float64, ncol)
    for l in 1:ncol
        row = rows[mod1(l, nrows)]
        j = div(l - 1, nrows) + 1
        period = size(snr, 3) >= j ? j : 1
        value = Float64(snr[row[1], row[2], period])
        value = isfinite(value) && value > 0 ? value : 1.0
        sigma[l] = Float64(maximum(abs, view(S, :, l))) / (value * sqrt(pi))
    end
    return sigma
end

# The file name for error messages (in-memory files have none).
function describe(f::MPIFile)
    has_path = isdefined(MPIFiles, :filepath) && applicable(MPIFiles.filepath, f)
    path = has_path ? MPIFiles.filepath(f) : nothing
    return path === nothing ? string(typeof(f)) : string(path)
end
