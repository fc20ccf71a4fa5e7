# Plugging restoration into MPIReco's system-matrix loading step.
#
# MPIReco's single-patch algorithm obtains (frequencies, S, grid) from
# `process(AbstractMPIRecoAlgorithm, reco.sfLoad, reco.sf)`; the "SinglePatch" plan
# wraps `sfLoad` in a result cache whose `param` a user may replace. Giving it a
# `RestoredSystemMatrix` (or a `RecoPlan(RestoredSystemMatrix; ...)`) makes every
# reconstruction of the plan use the restored matrix.

"""
    RestoredSystemMatrix(; model, freqFilter = SNRThresholdFrequencyFilterParameter(),
                         bgCorrection = false, tfCorrection = nothing,
                         loadasreal = false, mask = nothing, noise = :auto,
                         keepBelow = 1e-3, projectionTol = 1.5, batchSize = 16)

An `AbstractSystemMatrixLoadingParameter` that loads the rows selected by `freqFilter`
(any MPIReco frequency filter parameter) from the calibration file and restores them
with the pympisr ONNX `model` (a path to a `.onnx` file or an [`SRModel`](@ref)) before
MPIReco reconstructs. Like MPIReco's `DenseSystemMatixLoadingParameter`:
`bgCorrection`; `tfCorrection` (`nothing` = `rxHasTransferFunction(sf)`); `loadasreal`;
the filter's `numPeriodAverages` and `numPeriodGrouping` are passed to
`getSystemMatrix`. There is no `gridding`: the grid of the restored matrix is the
model's output grid (see the README). `mask` (Bool (Nx, Ny, Nz), `true` = valid) is for
inpainting models; `noise`, `keepBelow` and `projectionTol` are the `noise`,
`keep_below` and `tol` of [`restore_system_matrix`](@ref). Use it in a plan:

```julia
plan = MPIRecoPlan("SinglePatch")
plan.parameter.reco.sfLoad.param = RecoPlan(RestoredSystemMatrix; model = "dncnn2d.onnx",
    freqFilter = RecoPlan(SNRThresholdFrequencyFilterParameter; SNRThresh = 5.0))
setAll!(plan, Dict{Symbol, Any}(:minFreq => 80e3))   # reaches the nested filter plan
```
"""
Base.@kwdef struct RestoredSystemMatrix{F <: AbstractFrequencyFilterParameter} <:
    AbstractSystemMatrixLoadingParameter
    model::Union{String, SRModel}
    freqFilter::F = SNRThresholdFrequencyFilterParameter()
    bgCorrection::Bool = false
    tfCorrection::Union{Bool, Nothing} = nothing
    loadasreal::Bool = false
    mask::Union{Nothing, Array{Bool, 3}} = nothing
    noise::Union{Symbol, Float64, Vector{Float64}} = :auto
    keepBelow::Float64 = 1.0e-3
    projectionTol::Float64 = 1.5
    batchSize::Int = 16
end

resolve_model(model::SRModel) = model
resolve_model(path::String) = load_model(path)

"""
    period_options(freqFilter) -> (numPeriodAverages, numPeriodGrouping)

The period averaging and grouping a frequency filter parameter selects rows for (1, 1
when it has no such fields; the common value of the parts of a composite filter).
"""
function period_options(filter)
    if hasproperty(filter, :filters)
        options = unique([period_options(part) for part in getproperty(filter, :filters)])
        length(options) <= 1 ||
            throw(ArgumentError(
                "the parts of the composite frequency filter disagree on period " *
                    "averaging/grouping: $options",
            ))
        return isempty(options) ? (1, 1) : only(options)
    end
    averages = hasproperty(filter, :numPeriodAverages) ?
        Int(getproperty(filter, :numPeriodAverages)) :
        1
    grouping = hasproperty(filter, :numPeriodGrouping) ?
        Int(getproperty(filter, :numPeriodGrouping)) :
        1
    return averages, grouping
end

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
    averages, grouping = period_options(p.freqFilter)
    noise = p.noise isa Vector{Float64} ? copy(p.noise) : p.noise
    S, grid = restore_system_matrix(
        resolve_model(p.model),
        sf,
        frequencies;
        bgCorrection = p.bgCorrection,
        tfCorrection = p.tfCorrection,
        numPeriodAverages = averages,
        numPeriodGrouping = grouping,
        loadasreal = p.loadasreal,
        mask = p.mask,
        noise = noise,
        keep_below = p.keepBelow,
        tol = p.projectionTol,
        batchsize = p.batchSize,
    )
    return frequencies, S, grid
end

# MPIReco's single-patch algorithm asks the loading parameter for an extra linear
# operator (a sparsifying transform for compressed matrices); a restored dense matrix
# has none. MPIReco 0.9.7 has this as its fallback; 0.9.0 to 0.9.6 define it only for
# their own loaders.
MPIReco.getLinearOperator(
    ::MPIReco.SinglePatchReconstructionAlgorithm,
    ::MPIReco.SinglePatchReconstructionParameter{<:RestoredSystemMatrix},
) = nothing
