# Test suite of MPISR. Run from the repository root with
#     julia --project=julia/MPISR -e 'using Pkg; Pkg.test()'
# The models and golden vectors come from the Python export in onnx_models/ (another
# folder with the environment variable PYMPISR_MODELS, as for pympisr itself).

using Test
using MPISR
using MPIFiles
using MPIReco
using NPZ
using JSON
using Random

const MODEL_DIR = get(
    ENV,
    "PYMPISR_MODELS",
    normpath(joinpath(@__DIR__, "..", "..", "..", "onnx_models")),
)
const MANIFEST = joinpath(MODEL_DIR, "manifest.json")

"""Entries of onnx_models/manifest.json ("pympisr-model-manifest": a "models" list of
objects with "name", "file", "task", "dims" and "golden" file names)."""
function manifest_entries(path::AbstractString)
    manifest = JSON.parsefile(path)
    get(manifest, "format", "") == "pympisr-model-manifest" ||
        error("$path: not a pympisr model manifest")
    return manifest["models"]
end

model_file(entry) = joinpath(MODEL_DIR, entry["file"])

"""Golden file paths of a manifest entry (the export's naming when it lists none)."""
function golden_files(entry)
    defaults = golden_paths(model_file(entry))
    listed = get(entry, "golden", Dict{String, Any}())
    path(key, default) = haskey(listed, key) ? joinpath(MODEL_DIR, listed[key]) : default
    return (
        input = path("input", defaults.input),
        output = path("output", defaults.output),
        mask = path("mask", defaults.mask),
    )
end

"""A small calibration as an in-memory MDF: smooth complex Gaussian blobs per
(frequency, channel) with a known SNR table; returns (mdf, data (O, K, C, 1), snr)."""
function inmemory_calibration(shape::NTuple{3, Int}; nchannels = 2, nsamples = 16, seed = 1)
    rng = MersenneTwister(seed)
    nx, ny, nz = shape
    nvoxels = prod(shape)
    nfreq = nsamples ÷ 2 + 1
    data = zeros(ComplexF32, nvoxels, nfreq, nchannels, 1)
    coords = CartesianIndices(shape)
    for c in 1:nchannels, k in 1:nfreq
        centre = (rand(rng) * nx, rand(rng) * ny, rand(rng) * nz) .+ 0.5
        width = 1.0 + 2.0 * rand(rng)
        phase = cis(2pi * rand(rng))
        for (v, idx) in enumerate(coords)
            r2 = sum(abs2, Tuple(idx) .- centre)
            data[v, k, c, 1] = ComplexF32(phase * exp(-r2 / (2 * width^2)))
        end
    end
    data .+= 0.01f0 .* randn(rng, ComplexF32, size(data))
    snr = 20.0 .* rand(rng, nfreq, nchannels, 1)

    mdf = MDFv2InMemory()
    mdf.root = defaultMDFv2Root()
    mdf.study = defaultMDFv2Study()
    mdf.experiment = defaultMDFv2Experiment()
    mdf.scanner = defaultMDFv2Scanner()
    acquisition = defaultMDFv2Acquisition()
    acquisition.numAverages = 1
    acquisition.numFrames = nvoxels
    acquisition.numPeriodsPerFrame = 1
    acquisition.receiver = MDFv2Receiver(
        bandwidth = 1.25e6,
        numChannels = nchannels,
        numSamplingPoints = nsamples,
        unit = "V",
    )
    mdf.acquisition = acquisition
    mdf.measurement = MDFv2Measurement(
        data = data,
        isBackgroundCorrected = false,
        isBackgroundFrame = fill(false, nvoxels),
        isFastFrameAxis = true,
        isFourierTransformed = true,
        isFramePermutation = false,
        isFrequencySelection = false,
        isSparsityTransformed = false,
        isSpectralLeakageCorrected = false,
        isTransferFunctionCorrected = false,
    )
    mdf.calibration = MDFv2Calibration(
        method = "simulation",
        order = "xyz",
        size = collect(shape),
        fieldOfView = [0.024, 0.02, 0.012],
        fieldOfViewCenter = [0.0, 0.001, 0.0],
        snr = snr,
    )
    return mdf, data, snr
end

grid_for(model) = model.dims == 2 ? (12, 10, 1) : (8, 7, 6)

function mask_for(model, shape; seed = 2)
    needs_mask(model) || return nothing
    mask = rand(MersenneTwister(seed), shape...) .> 0.1
    return Array{Bool, 3}(mask)
end

@testset "MPISR" begin
    @testset "column-major recipe" begin
        rng = MersenneTwister(0)
        images = randn(rng, ComplexF32, 5, 4, 3, 2) # (Nx, Ny, Nz, B)
        tensor = onnx_tensor(images, 3)
        @test size(tensor) == (2, 2, 3, 4, 5) # (B, 2, Nz, Ny, Nx)
        @test all(
            tensor[b, 1, z, y, x] == real(images[x, y, z, b]) &&
                tensor[b, 2, z, y, x] == imag(images[x, y, z, b])
            for x in 1:5, y in 1:4, z in 1:3, b in 1:2
        )
        # the C-order memory of the tensor is the column-major (Nx, Ny, Nz, 2, B) array
        raw = permutedims(tensor, (5, 4, 3, 2, 1))
        @test raw[:, :, :, 1, :] == real.(images)
        @test raw[:, :, :, 2, :] == imag.(images)
        @test complex_images(tensor, 3) == images

        planar = randn(rng, ComplexF32, 6, 5, 1, 3)
        tensor2 = onnx_tensor(planar, 2)
        @test size(tensor2) == (3, 2, 5, 6) # (B, 2, Ny, Nx)
        @test all(
            tensor2[b, 1, y, x] == real(planar[x, y, 1, b])
            for x in 1:6, y in 1:5, b in 1:3
        )
        @test complex_images(tensor2, 2) == planar
        @test_throws DimensionMismatch onnx_tensor(images, 2)

        valid = rand(rng, Bool, 5, 4, 3, 2)
        mask = onnx_mask(valid, 3)
        @test size(mask) == (2, 1, 3, 4, 5)
        @test all(
            mask[b, 1, z, y, x] == Float32(valid[x, y, z, b])
            for x in 1:5, y in 1:4, z in 1:3, b in 1:2
        )
        @test mask_images(mask, 3) == valid
    end

    @testset "ONNX metadata reader" begin
        # ModelProto{ir_version = 8, graph = {name = "g"},
        #            metadata_props = [{key = "task", value = "denoising"}]}
        bytes = UInt8[
            0x08,
            0x08,
            0x3a,
            0x03,
            0x12,
            0x01,
            0x67,
            0x72,
            0x11,
            0x0a,
            0x04,
            codeunits("task")...,
            0x12,
            0x09,
            codeunits("denoising")...,
        ]
        path = tempname() * ".onnx"
        write(path, bytes)
        @test MPISR.onnx_metadata(path) == Dict("task" => "denoising")
        write(path, bytes[1:end - 3])
        @test_throws ArgumentError MPISR.onnx_metadata(path)
        rm(path)
    end

    @test isfile(MANIFEST)
    entries = isfile(MANIFEST) ? manifest_entries(MANIFEST) : Any[]
    @test !isempty(entries)

    @testset "golden vectors: $(entry["name"])" for entry in entries
        model = load_model(model_file(entry))
        @test model.dims == entry["dims"]
        @test model_task(model) == entry["task"]
        files = golden_files(entry)
        max_error, scale = check_golden(
            model;
            input = files.input,
            output = files.output,
            mask = files.mask,
        )
        @test max_error <= 1.0e-4 * scale

        # the same numbers through the complex-array path
        images = complex_images(npzread(files.input), model.dims)
        mask = files.mask === nothing ?
            nothing :
            mask_images(npzread(files.mask), model.dims)
        restored = restore_images(model, images; mask = mask, batchsize = 1)
        expected = Array{Float32}(npzread(files.output))
        @test isapprox(
            onnx_tensor(restored, model.dims),
            expected;
            rtol = 1.0e-4,
            atol = 1.0e-4 * maximum(abs, expected),
        )
    end

    @testset "in-memory MDF end to end: $(entry["name"])" for entry in entries
        model = load_model(model_file(entry))
        shape = grid_for(model)
        mdf, data, snr = inmemory_calibration(shape)
        mask = mask_for(model, shape)
        frequencies, S, grid = restore_system_matrix(
            model,
            mdf;
            mask = mask,
            SNRThresh = 5.0,
        )

        expected_freqs = [
            CartesianIndex(k, c)
            for c in axes(snr, 2)
            for k in axes(snr, 1)
            if snr[k, c, 1] >= 5.0
        ]
        @test frequencies == expected_freqs
        @test S isa Matrix{ComplexF32}
        @test size(S) == (prod(grid.shape), length(frequencies))
        @test all(collect(grid.shape) .>= collect(shape))
        @test collect(grid.fov) == [0.024, 0.02, 0.012]

        columns = reduce(hcat, [data[:, f[1], f[2], 1] for f in frequencies])
        direct, direct_shape = restore(model, columns, shape; mask = mask)
        @test Tuple(grid.shape) == direct_shape
        @test isapprox(S, direct; rtol = 1.0e-5)
    end

    @testset "MPIReco hook" begin
        usable = filter(entry -> !needs_mask(load_model(model_file(entry))), entries)
        @test !isempty(usable)
        if !isempty(usable)
            model = load_model(model_file(first(usable)))
            shape = grid_for(model)
            mdf, _, _ = inmemory_calibration(shape; seed = 3)
            filter_param = SNRThresholdFrequencyFilterParameter(SNRThresh = 5.0)
            p = RestoredSystemMatrix(model = model.path, freqFilter = filter_param)
            @test p isa AbstractSystemMatrixLoadingParameter

            frequencies, S, grid = MPIReco.process(AbstractMPIRecoAlgorithm, p, mdf)
            ref_freqs, ref_S, ref_grid = restore_system_matrix(model, mdf; SNRThresh = 5.0)
            @test frequencies isa Vector{CartesianIndex{2}}
            @test frequencies == ref_freqs
            @test S isa Matrix{ComplexF32}
            @test S ≈ ref_S
            @test grid.shape == ref_grid.shape

            plan = MPIRecoPlan("SinglePatch")
            setAll!(
                plan,
                Dict{Symbol, Any}(
                    :SNRThresh => 5.0,
                    :frames => 1:1,
                    :minFreq => 0.0,
                    :recChannels => 1:2,
                    :iterations => 1,
                    :spectralLeakageCorrection => false,
                    :reg => [L2Regularization(0.0f0)],
                ),
            )
            plan.parameter.reco.sf = mdf
            plan.parameter.reco.sfLoad.param = p
            algo = build(plan)
            @test algo.freqs == frequencies
            @test size(algo.S) ==
                (length(frequencies), size(S, 1)) # transposed for Kaczmarz
            @test collect(algo.grid.shape) == collect(grid.shape)
        end
    end
end
