# Loading a pympisr ONNX model (DESIGN section 8 contract) with its metadata.

const INPUT_SM = "sm"
const INPUT_MASK = "mask"
const OUTPUT_RESTORED = "restored"

"""
    SRModel

A loaded pympisr restoration model.

Fields
- `path`: the `.onnx` file.
- `session`: the `ONNXRunTime.InferenceSession`.
- `metadata`: the model's `metadata_props` (task, architecture, dims, scale factor,
  axis order, noise range, training data, pympisr version, test metrics).
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
metadata). `execution_provider = :cuda` needs `import CUDA, cuDNN` first (see ONNXRunTime.jl).
"""
function load_model(path::AbstractString; execution_provider::Symbol = :cpu)
    isfile(path) || throw(ArgumentError("$path: no such model file"))
    metadata = onnx_metadata(path)
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
    return SRModel(
        String(path),
        session,
        metadata,
        model_dims(path, metadata),
        inputs,
        outputs,
    )
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

"""
    needs_mask(model) -> Bool

Whether the model takes a validity mask (inpainting models).
"""
needs_mask(model::SRModel) = INPUT_MASK in model.input_names

"""
    model_task(model) -> String

The restoration task from the metadata ("" when the exporter did not record it).
"""
model_task(model::SRModel) = get(model.metadata, "task", "")

function Base.show(io::IO, model::SRModel)
    print(io, "SRModel(\"", basename(model.path), "\", ", model.dims, "D")
    isempty(model_task(model)) || print(io, ", task = ", model_task(model))
    haskey(model.metadata, "architecture") &&
        print(io, ", architecture = ", model.metadata["architecture"])
    needs_mask(model) && print(io, ", needs mask")
    print(io, ")")
end

"""
    run_model(model, sm, mask = nothing) -> Array{Float32}

Run the graph on ONNX-layout arrays: `sm` of size (B, 2, [D,] H, W) and, for inpainting
models, `mask` of size (B, 1, [D,] H, W). Returns `restored` (B, 2, [D',] H', W').
"""
function run_model(model::SRModel, sm::AbstractArray{Float32}, mask = nothing)
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
    outputs = model.session(inputs, [OUTPUT_RESTORED])
    return Array{Float32}(outputs[OUTPUT_RESTORED])
end
