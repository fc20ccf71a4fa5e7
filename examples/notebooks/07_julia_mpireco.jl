# ---
# jupyter:
#   jupytext:
#     formats: jl:percent
#   kernelspec:
#     display_name: Julia 1.10
#     language: julia
#     name: julia-1.10
# ---

# %% [markdown]
# # The quick tour in Julia: MPIFiles, MPIReco and MPISR
#
# The same steps as `01_quick_tour.py`: open the OpenMPI 3D calibration and the
# resolution-phantom measurement, look at the calibration, reconstruct with the
# settings of OpenMPI's MPIReco example, and reconstruct once more with the
# calibration restored by a pympisr model (`MPISR.RestoredSystemMatrix`).
#
# Files: the real OpenMPI files, or the stand-ins pympisr writes when they are missing:
#
#     python -c "from pympisr.openmpi import openmpi_data; f = openmpi_data(); print(f.calibration, f.measurement)"
#
# and pass their paths as `PYMPISR_CALIBRATION` and `PYMPISR_MEASUREMENT`. Results go to
# `PYMPISR_NOTEBOOK_OUT` (default `notebook_output`).
# Setup: `using Pkg; Pkg.develop(path = "julia/MPISR")` from the repository root.

# %%
using MPIFiles, MPIReco, MPISR
using Statistics

calibration = get(ENV, "PYMPISR_CALIBRATION", "calibrations/3.mdf")
measurement = get(ENV, "PYMPISR_MEASUREMENT", "measurements/resolutionPhantom/3.mdf")
model_path = get(ENV, "PYMPISR_MODEL",
                 joinpath(@__DIR__, "..", "..", "onnx_models", "denoise_dncnn_small_nl_2d.onnx"))
out = get(ENV, "PYMPISR_NOTEBOOK_OUT", "notebook_output")
mkpath(out)

# %% [markdown]
# ## The data

# %%
bSF = MPIFile(calibration)
b = MPIFile(measurement)
println("calibration: grid ", calibSize(bSF), ", FOV ", calibFov(bSF), " m, ",
        rxNumChannels(bSF), " channels, ", length(measBGFrameIdx(bSF)), " background frames")
println("measurement: ", acqNumFGFrames(b), " foreground frames")

# %% [markdown]
# ## SNR per component (MPIFiles' calibration SNR)

# %%
snr = calibSNR(bSF)[:, :, 1]          # frequencies x channels
for (c, name) in enumerate(("x", "y", "z"))
    println("channel $name: ", count(>=(2.0), snr[:, c]), " components with SNR >= 2")
end

# %% [markdown]
# ## Reconstruction with OpenMPI's settings
# One MPIReco plan; `loader` replaces its system-matrix loading step when given (it
# must be assigned before `setAll!` so that the settings reach its frequency filter).

# %%
settings = Dict{Symbol, Any}(:frames => 1:acqNumFGFrames(b), :iterations => 3,
                             :SNRThresh => 2.0, :minFreq => 80e3, :recChannels => 1:3,
                             :reg => [L2Regularization(0.001f0)])

function reconstruct_with(bSF, b, settings; loader = nothing)
    plan = MPIRecoPlan("SinglePatch")
    plan.parameter.reco.sf = bSF
    if loader !== nothing
        plan.parameter.reco.sfLoad.param = loader
    end
    setAll!(plan, settings)
    c = reconstruct(build(plan), b)          # an ImageMeta; frames on its last axis
    data = Array{Float32}(c.data)
    frames_mean = mean(data, dims = ndims(data))
    return reshape(frames_mean, Tuple(calibSize(bSF)))      # (x, y, z)
end

volume = reconstruct_with(bSF, b, settings)

# %% [markdown]
# ## Reconstruction with the restored calibration
# The shipped 2D denoiser restores the calibration slice by slice inside MPIReco's
# system-matrix loading step.

# %%
model = load_model(model_path)
check_golden(model)
loader = RecoPlan(RestoredSystemMatrix; model = model, bgCorrection = true,
                  freqFilter = RecoPlan(SNRThresholdFrequencyFilterParameter;
                                        recChannels = 1:3))
volume_restored = reconstruct_with(bSF, b, settings; loader = loader)

# %% [markdown]
# ## Results
# The central slices of both reconstructions, as text tables beside the notebook.

# %%
function write_slices(path, vol)
    nx, ny, nz = size(vol)
    open(path, "w") do io
        for (name, view) in (("xy", vol[:, :, cld(nz, 2)]), ("xz", vol[:, cld(ny, 2), :]),
                             ("yz", vol[cld(nx, 2), :, :]))
            println(io, "# ", name)
            for row in eachrow(view)
                println(io, join(round.(row, sigdigits = 4), " "))
            end
        end
    end
    return path
end

written = [write_slices(joinpath(out, "07_reconstruction_measured.txt"), volume),
           write_slices(joinpath(out, "07_reconstruction_restored.txt"), volume_restored)]
println("wrote ", join(written, ", "))
