# Test suite of MPISR. Run from the repository root with
#     julia --project=julia/MPISR -e 'using Pkg; Pkg.test()'
# The models and golden vectors come from the Python export in onnx_models/ (another
# folder with the environment variable PYMPISR_MODELS, as for pympisr itself). The
# contract fixtures in test/data (tiny closed-form ONNX graphs written by
# test/data/make_fixtures.py) exercise the optional inputs `sigma` and `mask` and the
# grid rules "scale" and "stride" whether or not a shipped model uses them yet.

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
const FIXTURE_DIR = joinpath(@__DIR__, "data")
const FIXTURE_MANIFEST = joinpath(FIXTURE_DIR, "manifest.json")

"""Entries of a pympisr model manifest ("pympisr-model-manifest": a "models" list of
objects with "name", "file", "task", "dims" and "golden" file names), each paired with
the manifest's folder."""
function manifest_entries(path::AbstractString)
    manifest = JSON.parsefile(path)
    get(manifest, "format", "") == "pympisr-model-manifest" ||
        error("$path: not a pympisr model manifest")
    return [(dirname(path), entry) for entry in manifest["models"]]
end

model_file(dir, entry) = joinpath(dir, entry["file"])

"""Golden file paths of a manifest entry: the files its "golden" object names (keys
"input", "output", "mask", "sigma"; older manifests list fewer), else the export's
naming beside the model (`golden_paths`, `nothing` for an absent mask or sigma)."""
function golden_files(dir, entry)
    defaults = golden_paths(model_file(dir, entry))
    listed = get(entry, "golden", nothing)
    function path(key, default)
        listed === nothing && return default
        haskey(listed, key) || return default
        return joinpath(dir, String(listed[key]))
    end
    return (
        input = path("input", defaults.input),
        output = path("output", defaults.output),
        mask = path("mask", defaults.mask),
        sigma = path("sigma", defaults.sigma),
    )
end

"""A small calibration as an in-memory MDF: smooth complex Gaussian blobs per
(frequency, channel) with a known SNR table, optionally followed by `nbackground`
background frames of complex Gaussian noise with per-part standard deviation
`bg_sigma`; returns (mdf, data (N, K, C, 1), snr)."""
function inmemory_calibration(
    shape::NTuple{3, Int};
    nchannels = 2,
    nsamples = 16,
    seed = 1,
    nbackground = 0,
    bg_sigma = 0.01,
)
    rng = MersenneTwister(seed)
    nx, ny, nz = shape
    nvoxels = prod(shape)
    nfreq = nsamples ÷ 2 + 1
    nframes = nvoxels + nbackground
    data = zeros(ComplexF32, nframes, nfreq, nchannels, 1)
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
    data[1:nvoxels, :, :, :] .+= 0.01f0 .*
        randn(rng, ComplexF32, nvoxels, nfreq, nchannels, 1)
    if nbackground > 0
        # randn(ComplexF32) has per-part standard deviation 1/sqrt(2)
        data[(nvoxels + 1):end, :, :, :] .= Float32(bg_sigma * sqrt(2)) .*
            randn(rng, ComplexF32, nbackground, nfreq, nchannels, 1)
    end
    snr = 20.0 .* rand(rng, nfreq, nchannels, 1)

    mdf = MDFv2InMemory()
    mdf.root = defaultMDFv2Root()
    mdf.study = defaultMDFv2Study()
    mdf.experiment = defaultMDFv2Experiment()
    mdf.scanner = defaultMDFv2Scanner()
    acquisition = defaultMDFv2Acquisition()
    acquisition.numAverages = 1
    acquisition.numFrames = nframes
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
        isBackgroundFrame = vcat(fill(false, nvoxels), fill(true, nbackground)),
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

"""A drive field for in-memory files that MPIReco's result header reads."""
function test_drivefield()
    return MDFv2Drivefield(
        baseFrequency = 2.5e6,
        cycle = 6.528e-4,
        divider = reshape([102, 96, 99], 1, 3),
        numChannels = 3,
        phase = zeros(1, 3, 1),
        strength = fill(0.012, 1, 3, 1),
        waveform = fill("sine", 1, 3),
    )
end

"""A calibration stored in the time domain (V, C, J, N) with `nperiods` periods per
frame, so that `getSystemMatrix` takes its measurement path (period grouping)."""
function timedomain_calibration(
    shape::NTuple{3, Int};
    nchannels = 2,
    nsamples = 16,
    nperiods = 2,
    seed = 4,
)
    rng = MersenneTwister(seed)
    nvoxels = prod(shape)
    data = randn(rng, Float32, nsamples, nchannels, nperiods, nvoxels)
    mdf = MDFv2InMemory()
    mdf.root = defaultMDFv2Root()
    mdf.study = defaultMDFv2Study()
    mdf.experiment = defaultMDFv2Experiment()
    mdf.scanner = defaultMDFv2Scanner()
    acquisition = defaultMDFv2Acquisition()
    acquisition.numAverages = 1
    acquisition.numFrames = nvoxels
    acquisition.numPeriodsPerFrame = nperiods
    acquisition.drivefield = test_drivefield()
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
        isFastFrameAxis = false,
        isFourierTransformed = false,
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
        fieldOfViewCenter = [0.0, 0.0, 0.0],
        isMeanderingGrid = false,
    )
    return mdf
end

"""A time-domain measurement (V, C, 1, N) matching `inmemory_calibration`'s receiver."""
function inmemory_measurement(; nchannels = 2, nsamples = 16, nframes = 2, seed = 5)
    rng = MersenneTwister(seed)
    mdf = MDFv2InMemory()
    mdf.root = defaultMDFv2Root()
    mdf.study = defaultMDFv2Study()
    mdf.experiment = defaultMDFv2Experiment()
    mdf.scanner = defaultMDFv2Scanner()
    acquisition = defaultMDFv2Acquisition()
    acquisition.numAverages = 1
    acquisition.numFrames = nframes
    acquisition.numPeriodsPerFrame = 1
    acquisition.drivefield = test_drivefield()
    acquisition.receiver = MDFv2Receiver(
        bandwidth = 1.25e6,
        numChannels = nchannels,
        numSamplingPoints = nsamples,
        unit = "V",
    )
    mdf.acquisition = acquisition
    mdf.measurement = MDFv2Measurement(
        data = randn(rng, Float32, nsamples, nchannels, 1, nframes),
        isBackgroundCorrected = false,
        isBackgroundFrame = fill(false, nframes),
        isFastFrameAxis = false,
        isFourierTransformed = false,
        isFramePermutation = false,
        isFrequencySelection = false,
        isSparsityTransformed = false,
        isSpectralLeakageCorrected = false,
        isTransferFunctionCorrected = false,
    )
    return mdf
end

grid_for(model) = model.dims == 2 ? (12, 10, 1) : (8, 7, 6)

function mask_for(model, shape; seed = 2)
    needs_mask(model) || return nothing
    mask = rand(MersenneTwister(seed), shape...) .> 0.1
    return Array{Bool, 3}(mask)
end

# voxel-centre coordinate of sample i along axis a of a RegularGridPositions (sign +1)
voxel_centre(grid, a, i) = grid.center[a] -
    grid.fov[a] / 2 +
    (i - 0.5) * grid.fov[a] / grid.shape[a]

const SHIPPED = isfile(MANIFEST) ? manifest_entries(MANIFEST) : Tuple{String, Any}[]
const FIXTURES = manifest_entries(FIXTURE_MANIFEST)
const ENTRIES = vcat(SHIPPED, FIXTURES)
fixture(name) = load_model(joinpath(FIXTURE_DIR, name * ".onnx"))

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

    @testset "ONNX metadata and IR version reader" begin
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
        @test MPISR.onnx_ir_version(path) == 8
        write(path, bytes[1:end - 3])
        @test_throws ArgumentError MPISR.onnx_metadata(path)
        @test_throws ArgumentError MPISR.onnx_ir_version(path)
        rm(path)
        @test MAX_IR_VERSION == 10 # onnxruntime 1.20.1 in ONNXRunTime.jl 1.3

        # grid metadata checks
        check = MPISR.check_grid_metadata
        @test check("m", Dict{String, String}()) === nothing
        @test check("m", Dict("scale_factor" => "2", "grid_rule" => "stride")) === nothing
        @test check("m", Dict("scale_factor" => "2.0")) === nothing
        @test_throws ArgumentError check(
            "m",
            Dict("scale_factor" => "2", "grid_rule" => "same"),
        )
        @test_throws ArgumentError check("m", Dict("grid_rule" => "nearest"))
        @test_throws ArgumentError check("m", Dict("scale_factor" => "0"))
    end

    @test isfile(MANIFEST)
    @test !isempty(SHIPPED)
    @test length(FIXTURES) == 4

    @testset "golden vectors: $(entry["name"])" for (dir, entry) in ENTRIES
        path = model_file(dir, entry)
        @test MPISR.onnx_ir_version(path) <= MAX_IR_VERSION
        model = load_model(path)
        @test model.dims == entry["dims"]
        @test model_task(model) == entry["task"]
        @test model_task(model) in MPISR.TASKS
        haskey(entry, "scale_factor") &&
            @test model_scale_factor(model) == entry["scale_factor"]
        haskey(entry, "grid_rule") && @test model_grid_rule(model) == entry["grid_rule"]
        files = golden_files(dir, entry)
        # the golden files a model's inputs need exist
        @test !needs_mask(model) || files.mask !== nothing
        @test !needs_noise(model) || files.sigma !== nothing
        max_error, scale = check_golden(
            model;
            input = files.input,
            output = files.output,
            mask = files.mask,
            sigma = files.sigma,
        )
        @test max_error <= 1.0e-4 * scale

        # the same numbers through the complex-array path (safety step off: the golden
        # output is the graph's)
        input = npzread(files.input)
        images = complex_images(input, model.dims)
        mask = needs_mask(model) ? mask_images(npzread(files.mask), model.dims) : nothing
        sigma = needs_noise(model) ? vec(Float64.(npzread(files.sigma))) : nothing
        restored = restore_images(
            model,
            images;
            mask = mask,
            sigma = sigma,
            batchsize = 1,
            keep_below = 0.0,
            tol = Inf,
        )
        expected = Array{Float32}(npzread(files.output))
        @test isapprox(
            onnx_tensor(restored, model.dims),
            expected;
            rtol = 1.0e-4,
            atol = 1.0e-4 * maximum(abs, expected),
        )
        # the output grid follows the model's grid rule
        in_shape = size(images)[1:3]
        @test size(restored)[1:3] ==
            ntuple(
                a -> a <= model.dims ? output_grid_size(model, in_shape[a]) : in_shape[a],
                3,
            )
    end

    @testset "in-memory MDF end to end: $(entry["name"])" for (dir, entry) in ENTRIES
        model = load_model(model_file(dir, entry))
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
        @test Tuple(grid.shape) ==
            ntuple(a -> a <= model.dims ? output_grid_size(model, shape[a]) : shape[a], 3)
        @test collect(grid.center) == [0.0, 0.001, 0.0]
        if model_grid_rule(model) != "stride"
            @test collect(grid.fov) == [0.024, 0.02, 0.012]
        end

        # the same through `restore` with the noise level restore_system_matrix chose
        # (no background frames here: the calibration SNR)
        columns = reduce(hcat, [data[:, f[1], f[2], 1] for f in frequencies])
        sigma = component_noise(mdf, frequencies, columns; noise = :snr)
        @test component_noise(mdf, frequencies, columns) == sigma # :auto
        direct, direct_shape = restore(model, columns, shape; mask = mask, sigma = sigma)
        @test Tuple(grid.shape) == direct_shape
        @test isapprox(S, direct; rtol = 1.0e-5)

        # loadasreal: MPIReco's layout, [real; imag] per column
        _, Sreal, _ = restore_system_matrix(
            model,
            mdf;
            mask = mask,
            SNRThresh = 5.0,
            loadasreal = true,
        )
        @test Sreal isa Matrix{Float32}
        @test Sreal ≈ vcat(real.(S), imag.(S))
    end

    @testset "noise level of each component" begin
        shape = (4, 3, 2)
        bg_sigma = 0.02
        mdf, _, snr = inmemory_calibration(shape; nbackground = 400, bg_sigma = bg_sigma)
        frequencies = filterFrequencies(mdf; SNRThresh = 5.0)
        S = getSystemMatrix(mdf, frequencies; bgCorrection = false)
        @test size(S) == (prod(shape), length(frequencies))

        # background frames: per-part standard deviation over 400 frames
        from_bg = component_noise(mdf, frequencies, S; noise = :background)
        @test length(from_bg) == length(frequencies)
        @test all(s -> isapprox(s, bg_sigma; rtol = 0.15), from_bg)
        @test component_noise(mdf, frequencies, S) == from_bg # :auto prefers them

        # calibration SNR: sigma = max|S_k| / (SNR_k sqrt(pi))
        from_snr = component_noise(mdf, frequencies, S; noise = :snr)
        expected = [
            maximum(abs, S[:, l]) / (snr[f[1], f[2], 1] * sqrt(pi))
            for (l, f) in enumerate(frequencies)
        ]
        @test from_snr ≈ expected

        # the constant: mean |z1 - z2| = sigma sqrt(pi) for complex Gaussians with
        # per-part standard deviation sigma
        rng = MersenneTwister(7)
        z = sqrt(2) .* randn(rng, ComplexF64, 200_000, 2) # per-part sigma 1
        @test isapprox(sum(abs, z[:, 1] .- z[:, 2]) / size(z, 1), sqrt(pi); rtol = 0.01)

        # user values, :none, errors
        n = length(frequencies)
        @test component_noise(mdf, frequencies, S; noise = 0.5) == fill(0.5, n)
        @test component_noise(mdf, frequencies, S; noise = collect(1.0:n)) == collect(1.0:n)
        @test component_noise(mdf, frequencies, S; noise = :none) === nothing
        @test_throws DimensionMismatch component_noise(mdf, frequencies, S; noise = [1.0])
        @test_throws ArgumentError component_noise(mdf, frequencies, S; noise = :guess)
        @test component_noise(mdf, frequencies, S; numPeriodGrouping = 2) === nothing
        @test_throws ArgumentError component_noise(
            mdf,
            frequencies,
            S;
            noise = :snr,
            numPeriodGrouping = 2,
        )
        plain, _, _ = inmemory_calibration(shape)
        @test_throws ArgumentError component_noise(
            plain,
            frequencies,
            S;
            noise = :background,
        )
    end

    @testset "noise input and safety step (fixture)" begin
        model = fixture("fixture_denoise_sigma_2d") # restored = sm + 2 sigma
        @test needs_noise(model) && !needs_mask(model)
        @test noise_input(model) == "sigma"
        rng = MersenneTwister(8)
        images = randn(rng, ComplexF32, 6, 5, 2, 3) .* 1.0f-3
        sigma = [1.0e-4, 2.0e-4, 5.0e-5]
        @test_throws ArgumentError restore_images(model, images) # sigma required
        shift(s) = ComplexF32(s + s * im)
        raw = restore_images(model, images; sigma = sigma, keep_below = 0.0, tol = Inf)
        @test all(raw[:, :, :, k] ≈ images[:, :, :, k] .+ 2 * shift(sigma[k]) for k in 1:3)
        # residual 2 sqrt(2m) sigma > eps = sqrt(2m) sigma: halved by the projection
        projected = restore_images(model, images; sigma = sigma, tol = 1.0)
        @test all(
            isapprox(
                projected[:, :, :, k],
                images[:, :, :, k] .+ shift(sigma[k]);
                rtol = 1.0e-4,
            )
            for k in 1:3
        )
        loose = restore_images(model, images; sigma = sigma, tol = 3.0)
        @test loose ≈ raw
        # relative noise below keep_below: returned as measured
        kept = restore_images(model, images; sigma = sigma, keep_below = 1.0)
        @test kept == images
        out = copy(raw)
        actions = safety_step!(model, out, images, [0.0, sigma[2], sigma[3]])
        @test actions == [:kept, :projected, :projected]
        # a number for all components
        @test restore_images(model, images; sigma = 1.0e-4, keep_below = 0.0, tol = Inf) ≈
            images .+ 2 * shift(1.0e-4)
    end

    @testset "mask input (fixture)" begin
        model = fixture("fixture_inpaint_mask_2d") # restored = sm * mask
        @test needs_mask(model) && !needs_noise(model)
        rng = MersenneTwister(9)
        images = randn(rng, ComplexF32, 6, 5, 2, 3)
        valid = rand(rng, Bool, 6, 5, 2)
        @test_throws ArgumentError restore_images(model, images)
        restored = restore_images(model, images; mask = valid)
        @test restored == images .* valid
        per_component = rand(rng, Bool, 6, 5, 2, 3)
        @test restore_images(model, images; mask = per_component) == images .* per_component
    end

    @testset "grid rules (fixtures)" begin
        grid = RegularGridPositions([4, 3, 5], [0.024, 0.018, 0.03], [0.001, 0.0, -0.002])

        # scale: n * s voxels, same field of view and centre (finer voxel centres)
        model = fixture("fixture_upsample_scale_3d")
        S = randn(MersenneTwister(10), ComplexF32, prod(grid.shape), 2)
        restored, fine = restore(model, S, grid)
        @test Tuple(fine.shape) == (8, 6, 10)
        @test collect(fine.fov) ≈ collect(grid.fov)
        @test collect(fine.center) ≈ collect(grid.center)
        @test size(restored) == (8 * 6 * 10, 2)
        images = reshape(restored, 8, 6, 10, 2)
        coarse = reshape(S, 4, 3, 5, 2)
        @test images[1:2:end, 1:2:end, 1:2:end, :] == coarse # nearest neighbour

        # stride: s (n - 1) + 1 samples, voxel size / s, coarse positions a subset
        model = fixture("fixture_accelerate_stride_2d")
        s = model_scale_factor(model)
        @test s == 3 && model_grid_rule(model) == "stride"
        restored, fine = restore(model, S, grid)
        @test Tuple(fine.shape) == (10, 7, 5) # 2D model: z unchanged
        for a in 1:2
            @test fine.fov[a] / fine.shape[a] ≈ grid.fov[a] / grid.shape[a] / s
            @test all(
                isapprox(
                    voxel_centre(fine, a, s * (i - 1) + 1),
                    voxel_centre(grid, a, i);
                    atol = 1.0e-12,
                )
                for i in 1:grid.shape[a]
            )
        end
        @test fine.fov[3] == grid.fov[3]
        @test collect(fine.center) ≈ collect(grid.center)
        images = reshape(restored, 10, 7, 5, 2)
        @test images[1:s:end, 1:s:end, :, :] == coarse

        # an output that breaks the rule is refused
        @test_throws DimensionMismatch MPISR.check_output_shape(
            model,
            (4, 3, 5),
            (12, 9, 5),
        )
    end

    @testset "MPIReco hook" begin
        usable = filter(
            ((dir, entry),) -> !needs_mask(load_model(model_file(dir, entry))),
            SHIPPED,
        )
        @test !isempty(usable)
        if !isempty(usable)
            dir, entry = first(usable)
            model = load_model(model_file(dir, entry))
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

            # plain struct: set it after setAll!, which cannot reach into it
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

            # reconstruct: exercises MPIReco's solver path and the getLinearOperator
            # override (needed by MPIReco 0.9.0-0.9.6)
            measurement = inmemory_measurement()
            image = reconstruct(algo, measurement)
            @test size(image)[2:4] == Tuple(grid.shape)
            @test all(isfinite, Array(image))

            # the RecoPlan form: setAll! reaches the nested filter afterwards
            plan2 = MPIRecoPlan("SinglePatch")
            setAll!(
                plan2,
                Dict{Symbol, Any}(
                    :frames => 1:1,
                    :iterations => 1,
                    :spectralLeakageCorrection => false,
                    :reg => [L2Regularization(0.0f0)],
                ),
            )
            plan2.parameter.reco.sf = mdf
            plan2.parameter.reco.sfLoad.param = RecoPlan(
                RestoredSystemMatrix;
                model = model.path,
                freqFilter = RecoPlan(SNRThresholdFrequencyFilterParameter),
            )
            setAll!(plan2, :SNRThresh, 5.0)
            @test plan2.parameter.reco.sfLoad.param.freqFilter.SNRThresh == 5.0
            algo2 = build(plan2)
            @test algo2.freqs == frequencies
            @test size(algo2.S) == size(algo.S)
        end
    end

    @testset "MPIReco parity with the dense loader (identity model)" begin
        # the inpainting fixture with every sample valid is the identity, so the
        # restored plan must reconstruct exactly like MPIReco's own dense loader
        model = fixture("fixture_inpaint_mask_2d")
        shape = (5, 4, 3)
        mdf, _, _ = inmemory_calibration(shape; seed = 6)
        mdf.acquisition.drivefield = test_drivefield()
        measurement = inmemory_measurement(; nframes = 3)
        settings = Dict{Symbol, Any}(
            :SNRThresh => 2.0,
            :frames => 1:3,
            :recChannels => 1:2,
            :iterations => 2,
            :spectralLeakageCorrection => false,
            :reg => [L2Regularization(0.01f0)],
        )
        dense = MPIRecoPlan("SinglePatch")
        setAll!(dense, settings)
        dense.parameter.reco.sf = mdf
        dense_algo = build(dense)

        restored = MPIRecoPlan("SinglePatch")
        setAll!(restored, settings)
        restored.parameter.reco.sf = mdf
        restored.parameter.reco.sfLoad.param = RecoPlan(
            RestoredSystemMatrix;
            model = model.path,
            mask = trues(shape...) |> Array{Bool, 3},
            noise = :none,
            freqFilter = RecoPlan(SNRThresholdFrequencyFilterParameter),
        )
        setAll!(restored, settings) # now reaches the nested filter plan
        restored_algo = build(restored)
        @test restored_algo.freqs == dense_algo.freqs
        @test Matrix(restored_algo.S) ≈ Matrix(dense_algo.S)
        reference = reconstruct(dense_algo, measurement)
        image = reconstruct(restored_algo, measurement)
        @test size(image) == size(reference)
        @test Array(image) ≈ Array(reference)
    end

    @testset "period grouping and averaging reach getSystemMatrix" begin
        @test MPISR.period_options(SNRThresholdFrequencyFilterParameter()) == (1, 1)
        @test MPISR.period_options(SNRThresholdFrequencyFilterParameter(
            numPeriodAverages = 2,
            numPeriodGrouping = 3,
        )) ==
            (2, 3)

        model = fixture("fixture_inpaint_mask_2d") # identity with an all-true mask
        shape = (3, 2, 2)
        calib = timedomain_calibration(shape; nperiods = 2)
        filter_param = SNRThresholdFrequencyFilterParameter(numPeriodGrouping = 2)
        p = RestoredSystemMatrix(
            model = model.path,
            freqFilter = filter_param,
            mask = Array{Bool, 3}(trues(shape...)),
            tfCorrection = false,
        )
        frequencies, S, _ = MPIReco.process(AbstractMPIRecoAlgorithm, p, calib)
        # rows of the grouped spectrum: 2 periods of 16 samples -> 17 frequencies
        @test maximum(f -> f[1], frequencies) == 17
        reference = getSystemMatrix(
            calib,
            frequencies;
            tfCorrection = false,
            numPeriodGrouping = 2,
        )
        @test size(S) == size(reference)
        @test S ≈ reference
    end
end
