# Checking a model against the golden vectors the Python export writes beside it.

"""
    golden_paths(model_path) -> NamedTuple

Paths of `<name>.golden_input.npy`, `<name>.golden_output.npy`,
`<name>.golden_mask.npy` and `<name>.golden_sigma.npy` (the last two `nothing` when
absent) next to `<name>.onnx`.
"""
function golden_paths(model_path::AbstractString)
    stem = splitext(model_path)[1]
    mask = stem * ".golden_mask.npy"
    sigma = stem * ".golden_sigma.npy"
    return (
        input = stem * ".golden_input.npy",
        output = stem * ".golden_output.npy",
        mask = isfile(mask) ? mask : nothing,
        sigma = isfile(sigma) ? sigma : nothing,
    )
end

"""
    check_golden(model; input, output, mask, sigma, rtol = 1e-4)
        -> (max_abs_error, max_abs_expected)

Run `model` on its golden input (and mask, and noise level) and compare with its golden
output; the paths default to [`golden_paths`](@ref) (what pympisr's export writes; the
model manifest names them too). The `.npy` files are float32 C-order arrays in the ONNX
layout: input and output (B, 2, [D,] H, W), mask (B, 1, [D,] H, W), sigma (B, 1);
NPZ.jl returns them with that shape and numpy's indexing, which is what ONNXRunTime.jl
takes. The graph runs without MPISR's safety step (golden outputs are the graph's).
Throws an `ErrorException` naming the model when the largest absolute difference
exceeds `rtol` times the largest absolute golden value.
"""
function check_golden(
    model::SRModel;
    input::AbstractString = golden_paths(model.path).input,
    output::AbstractString = golden_paths(model.path).output,
    mask::Union{Nothing, AbstractString} = golden_paths(model.path).mask,
    sigma::Union{Nothing, AbstractString} = golden_paths(model.path).sigma,
    rtol::Real = 1.0e-4,
)
    for path in (input, output)
        isfile(path) || throw(ArgumentError("$(model.path): golden file $path is missing"))
    end
    x = Array{Float32}(npzread(input))
    expected = Array{Float32}(npzread(output))
    valid = mask === nothing ? nothing : Array{Float32}(npzread(mask))
    noise = sigma === nothing ? nothing : Array{Float32}(npzread(sigma))
    needs_mask(model) &&
        valid === nothing &&
        throw(ArgumentError(
            "$(model.path): the model takes a mask but no golden mask exists",
        ))
    needs_noise(model) &&
        noise === nothing &&
        throw(ArgumentError(
            "$(model.path): the model takes a noise level but no golden sigma exists",
        ))
    actual = run_model(
        model,
        x,
        needs_mask(model) ? valid : nothing;
        sigma = needs_noise(model) ? noise : nothing,
    )
    size(actual) == size(expected) ||
        error(
            "$(model.path): output size $(size(actual)) differs from golden $(size(expected))",
        )
    max_error = Float64(maximum(abs, actual .- expected))
    scale = Float64(maximum(abs, expected))
    max_error <= rtol * scale ||
        error("$(model.path): max |output - golden| = $max_error exceeds $(rtol) x $scale")
    return max_error, scale
end
