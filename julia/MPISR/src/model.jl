# Loading a pympisr ONNX model (DESIGN section 8 contract) with its metadata.
#
# The contract: input `sm` float32 (B, 2, [D,] H, W) in raw units; optional input
# `sigma` float32 (B, 1) (noise standard deviation of the real and of the imaginary part
# of each component, raw units; metadata `noise_input` names it); optional input `mask`
# float32 (B, 1, [D,] H, W), 1 = valid sample; output `restored` on the output grid.
# Metadata `task`, `dims`, `scale_factor` and `grid_rule` ("same", "scale", "stride")
# say how the output grid relates to the input grid (see `output_grid_size`).

const INPUT_SM = "sm"
const INPUT_MASK = "mask"
const INPUT_SIGMA = "sigma"
const OUTPUT_RESTORED = "restored"
const GRID_RULES = ("same", "scale", "stride")
const TASKS = ("denoise", "upsample", "accelerate", "inpaint")

# Newest ONNX IR version the onnxruntime bundled with ONNXRunTime.jl reads. MPISR's
# compat requires ONNXRunTime 1.3, which bundles onnxruntime 1.20.1 (ONNX 1.16, IR 10,
# opset 21); pympisr's tests/test_golden_layout.py enforces the same bound.
const MAX_IR_VERSION = 10

"""
    SRModel

A loaded pympisr restoration model.

Fields
- `path`: the `.onnx` file.
- `session`: the `ONNXRunTime.InferenceSession`.
- `metadata`: the model's `metadata_props` (task, architecture, dims, scale factor,
  grid rule, axis order, noise range, training data, pympisr version, test metrics).
- `dims`: 2 (input `(B, 2, H, W)`) or 3 (input `(B, 2, D, H, W)`).
- `input_names`, `output_names`: names of the graph's inputs and outputs.
"""
struct SRModel
    path::String
    session::ONNXRunTime.InferenceSession
    metadata::Dict{String, String}
    dims::Int
    input_names::Vector{String}
    output_names::Vector{String}
end

"""
    load_model(path; execution_provider = :cpu) -> SRModel

Load a pympisr ONNX model and its metadata. Throws an `ArgumentError` naming the file
when it is not a pympisr model (no `sm` input, no `restored` output, no `dims`
metadata), when its metadata are inconsistent (unknown `grid_rule`, bad `scale_factor`)
or when its ONNX IR version is newer than the bundled onnxruntime reads
([`MAX_IR_VERSION`](@ref)). `execution_provider = :cuda` needs `import CUDA, cuDNN`
first (see ONNXRunTime.jl).
"""
function load_model(path::AbstractString; execution_provider::Symbol = :cpu)
    isfile(path) || throw(ArgumentError("$path: no such model file"))
    metadata = onnx_metadata(path)
    ir_version = onnx_ir_version(path)
    ir_version <= MAX_IR_VERSION ||
        throw(ArgumentError(
            "$path: ONNX IR version $ir_version is newer than $MAX_IR_VERSION, the " *
                "newest the onnxruntime bundled with ONNXRunTime.jl 1.3 reads; re-export it",
        ))
    dims = model_dims(path, metadata)
    check_grid_metadata(path, metadata)
    session = ONNXRunTime.load_inference(path; execution_provider = execution_provider)
    inputs = collect(String, ONNXRunTime.input_names(session))
    outputs = collect(String, ONNXRunTime.output_names(session))
    INPUT_SM in inputs ||
        throw(ArgumentError(
            "$path: graph inputs $inputs lack \"$INPUT_SM\" (not a pympisr model)",
        ))
    OUTPUT_RESTORED in outputs ||
        throw(ArgumentError(
            "$path: graph outputs $outputs lack \"$OUTPUT_RESTORED\" (not a pympisr model)",
        ))
    noise = get(metadata, "noise_input", INPUT_SIGMA)
    known = (INPUT_SM, INPUT_MASK, noise)
    unknown = filter(name -> !(name in known), inputs)
    isempty(unknown) ||
        throw(ArgumentError(
            "$path: graph inputs $unknown are not part of the pympisr contract " *
                "(sm, mask, $noise)",
        ))
    return SRModel(String(path), session, metadata, dims, inputs, outputs)
end

function model_dims(path::AbstractString, metadata::Dict{String, String})
    haskey(metadata, "dims") ||
        throw(ArgumentError("$path: metadata_props lack \"dims\" (not a pympisr model)"))
    dims = tryparse(Int, strip(metadata["dims"]))
    dims in (2, 3) ||
        throw(ArgumentError(
            "$path: metadata \"dims\" must be 2 or 3, got \"$(metadata["dims"])\"",
        ))
    return dims
end

function check_grid_metadata(path::AbstractString, metadata::Dict{String, String})
    raw = strip(get(metadata, "scale_factor", "1"))
    factor = tryparse(Int, raw)
    if factor === nothing
        # older exports may write "2.0"
        value = tryparse(Float64, raw)
        factor = value !== nothing && isinteger(value) ? Int(value) : nothing
    end
    (factor !== nothing && factor >= 1) ||
        throw(ArgumentError(
            "$path: metadata \"scale_factor\" must be an integer >= 1, got \"$raw\"",
        ))
    rule = get(metadata, "grid_rule", factor == 1 ? "same" : "scale")
    rule in GRID_RULES ||
        throw(ArgumentError(
            "$path: metadata \"grid_rule\" must be one of $GRID_RULES, got \"$rule\"",
        ))
    rule == "same" &&
        factor != 1 &&
        throw(ArgumentError(
            "$path: grid_rule \"same\" with scale_factor $factor is contradictory",
        ))
    return nothing
end

"""
    needs_mask(model) -> Bool

Whether the model takes a validity mask (inpainting models).
"""
needs_mask(model::SRModel) = INPUT_MASK in model.input_names

"""
    noise_input(model) -> String

Name of the graph input that takes the noise level (metadata `noise_input`, default
"sigma"; pympisr writes "none" for models without one); see [`needs_noise`](@ref).
"""
noise_input(model::SRModel) = get(model.metadata, "noise_input", INPUT_SIGMA)

"""
    needs_noise(model) -> Bool

Whether the model takes the noise standard deviation of each component, an input
`sigma` of size (B, 1) in the raw units of `sm`.
"""
needs_noise(model::SRModel) = noise_input(model) in model.input_names

"""
    model_task(model) -> String

The restoration task from the metadata (denoise, upsample, accelerate, inpaint; ""
when the exporter did not record it).
"""
model_task(model::SRModel) = get(model.metadata, "task", "")

"""
    model_scale_factor(model) -> Int

The metadata `scale_factor` (1 for models that keep the grid).
"""
function model_scale_factor(model::SRModel)
    raw = strip(get(model.metadata, "scale_factor", "1"))
    factor = tryparse(Int, raw)
    return factor === nothing ? Int(parse(Float64, raw)) : factor
end

"""
    model_grid_rule(model) -> String

How the output grid follows from the input grid, per spatial axis of the model with `n`
input samples and scale factor `s`: "same" (`n`), "scale" (`n * s`, block-mean
upsampling: same field of view, finer voxels) or "stride" (`s * (n - 1) + 1`:
accelerated calibration measured every `s`-th position of the fine grid). Models
without the metadata key follow "same" for `scale_factor == 1`, else "scale".
"""
model_grid_rule(model::SRModel) = get(
    model.metadata,
    "grid_rule",
    model_scale_factor(model) == 1 ? "same" : "scale",
)

"""
    output_grid_size(model, n::Integer) -> Int

Number of output samples along one spatial axis of the model with `n` input samples
(see [`model_grid_rule`](@ref)).
"""
function output_grid_size(model::SRModel, n::Integer)
    rule = model_grid_rule(model)
    s = model_scale_factor(model)
    rule == "same" && return Int(n)
    rule == "scale" && return Int(n) * s
    return s * (Int(n) - 1) + 1
end

function Base.show(io::IO, model::SRModel)
    print(io, "SRModel(\"", basename(model.path), "\", ", model.dims, "D")
    isempty(model_task(model)) || print(io, ", task = ", model_task(model))
    haskey(model.metadata, "architecture") &&
        print(io, ", architecture = ", model.metadata["architecture"])
    model_grid_rule(model) == "same" ||
        print(io, ", grid ", model_grid_rule(model), " x", model_scale_factor(model))
    needs_noise(model) && print(io, ", needs noise level")
    needs_mask(model) && print(io, ", needs mask")
    print(io, ")")
end

"""
    run_model(model, sm, mask = nothing; sigma = nothing) -> Array{Float32}

Run the graph on ONNX-layout arrays: `sm` of size (B, 2, [D,] H, W), for inpainting
models `mask` of size (B, 1, [D,] H, W), for noise-conditioned models `sigma` of size
(B, 1) (or a vector of length B). Returns `restored` (B, 2, [D',] H', W').
"""
function run_model(
    model::SRModel,
    sm::AbstractArray{Float32},
    mask = nothing;
    sigma = nothing,
)
    nbatch = size(sm, 1)
    inputs = Dict{String, Array{Float32}}(INPUT_SM => Array(sm))
    if needs_mask(model)
        mask === nothing &&
            throw(ArgumentError(
                "$(model.path): this model needs a mask (1 = valid sample)",
            ))
        inputs[INPUT_MASK] = Array{Float32}(mask)
    elseif mask !== nothing
        throw(ArgumentError("$(model.path): this model takes no mask"))
    end
    if needs_noise(model)
        sigma === nothing &&
            throw(ArgumentError(
                "$(model.path): this model needs the noise level of each component " *
                    "(input \"$(noise_input(model))\")",
            ))
        length(sigma) == nbatch ||
            throw(DimensionMismatch(
                "$(length(sigma)) noise levels for a batch of $nbatch components",
            ))
        inputs[noise_input(model)] = reshape(Array{Float32}(vec(sigma)), nbatch, 1)
    end
    outputs = model.session(inputs, [OUTPUT_RESTORED])
    return Array{Float32}(outputs[OUTPUT_RESTORED])
end
