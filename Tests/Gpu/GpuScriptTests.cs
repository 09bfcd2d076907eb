using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using AlexNet.Cli;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Tests.Classify;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Tests.Weights;

namespace AlexNet.Cuda.Tests.Gpu;

/// <summary>
/// The scripts of Bench/gpu, which run on the GPU validation machine where no test runs: they parse, the
/// summary prints the engine's images/s over PyTorch's from real bench output, the PyTorch script's weight
/// layouts compute what the weight file's do, and the payload check counts what travels.
/// </summary>
[Collection(OpenClCollection.Name)]
public class GpuScriptTests(OpenClFixture fixture)
{
    private static readonly string Scripts = RepositoryFiles.PathOf("Bench/gpu");

    [SkippableFact]
    public void BothPythonScriptsCompile()
    {
        NumpyReference.Require();
        using var dir = new TempDir();
        foreach (string script in new[] { "pytorch_alexnet.py", "summarize.py" })
        {
            (int code, string output) = NumpyReference.Run(["-c", "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)",
                Path.Combine(Scripts, script), dir.File(script + "c")]);
            Assert.True(code == 0, $"{script}: {output}");
        }
    }

    [Fact]
    public void ShellScriptsParse()
    {
        foreach (string script in new[] { "build.sh", "run-checks.sh" })
        {
            (int code, string output) = Run("/bin/bash", ["-n", Path.Combine(Scripts, script)]);
            Assert.True(code == 0, $"{script}: {output}");
        }
    }

    [SkippableFact]
    public void SummaryPrintsTheEngineOverEachPyTorchModePerBatch()
    {
        _ = fixture.Device;
        TestNative.Require(NativeLibraryId.ClBlast);
        NumpyReference.Require();
        using var dir = new TempDir();
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["bench", "--device", "opencl", "--batch", "1", "--iterations", "2", "--warmup", "1", "--format", "json"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        string bench = dir.Write("bench.json", System.Text.Encoding.UTF8.GetBytes(stdout.ToString()));
        double ours;
        using (JsonDocument doc = JsonDocument.Parse(stdout.ToString()))
            ours = doc.RootElement.GetProperty("results")[0].GetProperty("images_per_second").GetDouble();

        // PyTorch's numbers are chosen here: one slower, one faster than anything the OpenCL device reaches,
        // a mode that failed, and a batch size the engine did not measure.
        const double Fp32 = 0.3711, Fp16 = 12345.6;
        var torch = new
        {
            device = "test fixture",
            versions = new { torch = "2.11.0", cuda = "13.0", cudnn = "91000" },
            settings = new { cudnn_benchmark = true },
            engine_vs_numpy = Comparison(2.5e-6, 3),
            modes = new Dictionary<string, object>
            {
                ["fp32"] = new
                {
                    description = "eager FP32, NCHW, TF32 off", tolerance = 1e-4, fp32 = true,
                    results = new object[]
                    {
                        Timed(1, Fp32, Logits(3e-6, 1, true)),
                        Timed(64, 900.0, Logits(4e-6, 3, true)),
                    },
                },
                ["fp16"] = new
                {
                    description = "FP16 autocast", tolerance = 1e-2, fp32 = false,
                    results = new object[] { Timed(1, Fp16, Logits(3e-2, 1, false)) },
                },
                ["graph"] = new
                {
                    description = "CUDA graph", tolerance = 1e-4, fp32 = true,
                    results = new object[] { new { batch = 1, error = "RuntimeError: capture failed" } },
                },
            },
            failures = new[] { "graph batch 1: RuntimeError: capture failed" },
            complete = true,
            passed = false,
        };
        string pytorch = dir.Write("pytorch.json", JsonSerializer.SerializeToUtf8Bytes(torch));
        string steps = dir.Write("steps.tsv", System.Text.Encoding.UTF8.GetBytes(
            "check\t0\t12\talexnet check --device cuda\npytorch\tskipped\t0\tPyTorch is not installed\nclassify\t124\t90\talexnet classify\n"));
        string summary = dir.File("summary.md");

        (int exit, string output) = NumpyReference.Run([Path.Combine(Scripts, "summarize.py"), "--out", summary, "--bench", bench,
            "--pytorch", pytorch, "--steps", steps]);
        Assert.True(exit == 0, output);
        string[] lines = File.ReadAllLines(summary);

        Assert.Equal(ours / Fp32, Ratio(lines, 1, "| PyTorch fp32 ("), 0.0005);
        Assert.Equal(ours / Fp16, Ratio(lines, 1, "| PyTorch fp16 ("), 0.0005);
        Assert.Contains("error: RuntimeError: capture failed", Row(lines, 1, "| PyTorch graph ("));
        Assert.Contains("not measured", Row(lines, 64, "| engine"));
        Assert.EndsWith("| – |", Row(lines, 64, "| PyTorch fp32 ("));

        Assert.EndsWith("| yes |", Assert.Single(lines, l => l.StartsWith("| PyTorch fp32 | 1e-04 |", StringComparison.Ordinal)));
        Assert.EndsWith("| NO (informative) |", Assert.Single(lines, l => l.StartsWith("| PyTorch fp16 | 1e-02 |", StringComparison.Ordinal)));
        Assert.EndsWith("| NO |", Assert.Single(lines, l => l.StartsWith("| PyTorch graph |", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.Contains("graph batch 1: RuntimeError: capture failed", StringComparison.Ordinal));
        Assert.Contains("| classify | 124 (timed out) | 90 |", lines.Where(l => l.StartsWith("| classify", StringComparison.Ordinal)).Single());
        Assert.StartsWith("| pytorch | skipped | 0 |", lines.Single(l => l.StartsWith("| pytorch", StringComparison.Ordinal)));
    }

    [SkippableFact]
    public void SummaryShowsTheLaunchByLaunchPassBesideAGraphsReplay()
    {
        NumpyReference.Require();
        using var dir = new TempDir();
        // bench.json as a GPU writes it with graphs on: batch 8 replayed, batch 64's capture failed.
        string bench = dir.Write("bench.json", System.Text.Encoding.UTF8.GetBytes("""
            { "device": "NVIDIA H100 80GB HBM3 (test fixture)", "precision": "bf16", "graphs": true, "results": [
              { "batch": 8, "images_per_second": 4000.0, "median_ms": 2.0, "min_ms": 1.9, "graph": true,
                "stream_median_ms": 2.5, "stream_min_ms": 2.4, "graph_speedup": 1.25, "layers": [] },
              { "batch": 64, "images_per_second": 7000.0, "median_ms": 9.1, "min_ms": 9.0, "graph": false,
                "graph_failure": "cuStreamEndCapture(stream, out graph) failed: CUDA_ERROR_STREAM_CAPTURE_INVALIDATED (901)", "layers": [] } ] }
            """));
        string summary = dir.File("summary.md");
        (int exit, string output) = NumpyReference.Run([Path.Combine(Scripts, "summarize.py"), "--out", summary, "--bench", bench,
            "--pytorch", dir.File("pytorch.json")]);
        Assert.True(exit == 0, output);
        string[] lines = File.ReadAllLines(summary);
        // Of peak: 4000 images/s × 1.4488 GFLOP of an H100's 989 TFLOP/s dense BF16 is 0.59 %.
        Assert.Equal("| engine (`alexnet bench` replaying its CUDA graph, bf16) | 4000.0 | 2.0000 | 1.9000 | 0.6% | 1.000 |", Row(lines, 8, "| engine"));
        Assert.Equal("| launch by launch (the engine without its graph) | 3200.0 | 2.5000 | 2.4000 | 0.5% | 1.250 |", Row(lines, 8, "| launch by launch"));
        Assert.StartsWith("| engine (`alexnet bench`, bf16) | 7000.0 |", Row(lines, 64, "| engine"));
        Assert.Contains("no graph: its capture failed: cuStreamEndCapture", Row(lines, 64, "| (no graph"));
    }

    [SkippableFact]
    public void SummaryPutsEveryOtherEngineRunBesideBenchJsonAndNamesTheFastestOfEachSide()
    {
        NumpyReference.Require();
        using var dir = new TempDir();
        string bench = dir.Write("bench.json", System.Text.Encoding.UTF8.GetBytes("""
            { "device": "NVIDIA H200 (test fixture)", "precision": "fp32", "results": [
              { "batch": 8, "images_per_second": 4000.0, "median_ms": 2.0, "min_ms": 1.9, "graph": true, "layers": [] } ] }
            """));
        // fp16 twice as fast at batch 8; --batch max's own size, 306; one size skipped; one run that wrote nothing.
        string fp16 = dir.Write("bench-fp16.json", System.Text.Encoding.UTF8.GetBytes("""
            { "device": "NVIDIA H200 (test fixture)", "precision": "fp16", "results": [
              { "batch": 8, "images_per_second": 8000.0, "median_ms": 1.0, "min_ms": 0.9, "graph": true, "layers": [] },
              { "batch": 64, "skipped": "out of device memory | test", "layers": [] } ] }
            """));
        string max = dir.Write("bench-max-fp16.json", System.Text.Encoding.UTF8.GetBytes("""
            { "device": "NVIDIA H200 (test fixture)", "precision": "fp16", "results": [
              { "batch": 306, "images_per_second": 50000.0, "median_ms": 6.12, "min_ms": 6.0, "graph": false, "layers": [] } ] }
            """));
        var torch = new
        {
            device = "NVIDIA H200 (test fixture)",
            modes = new Dictionary<string, object>
            {
                ["fp32"] = new { description = "eager FP32", results = new object[] { new { batch = 8, images_per_second = 1000.0, median_ms = 8.0, min_ms = 7.9 } } },
                ["amp_fp16"] = new { description = "FP16 autocast", results = new object[] { new { batch = 8, images_per_second = 5000.0, median_ms = 1.6, min_ms = 1.5 } } },
            },
        };
        string pytorch = dir.Write("pytorch.json", JsonSerializer.SerializeToUtf8Bytes(torch));
        string summary = dir.File("summary.md");
        (int exit, string output) = NumpyReference.Run([Path.Combine(Scripts, "summarize.py"), "--out", summary, "--bench", bench,
            "--pytorch", pytorch, "--mode", $"fp16={fp16}", "--mode", $"max-fp16={max}", "--mode", $"bf16={dir.File("bench-bf16.json")}",
            "--mode", $"epilogue-cublaslt={dir.Write("bench-epilogue-cublaslt.json", [])}"]);
        Assert.True(exit == 0, output);
        string[] lines = File.ReadAllLines(summary);
        // bench.json's images/s over the run's: 4000 / 8000; of peak: 8000 × 1.4488 GFLOP of an H200's 989 TFLOP/s FP16.
        Assert.Equal("| engine fp16 (`alexnet bench` replaying its CUDA graph, fp16) | 8000.0 | 1.0000 | 0.9000 | 1.2% | 0.500 |", Row(lines, 8, "| engine fp16"));
        Assert.Equal(0.8, Ratio(lines, 8, "| PyTorch amp_fp16 ("), 0.0005);
        Assert.Contains("Fastest: the engine's fp16 at 8000.0 images/s, PyTorch's amp_fp16 at 5000.0: 1.600 (above 1: the engine is faster).", lines);
        Assert.Contains("skipped: out of device memory / test", Row(lines, 64, "| engine fp16"));
        Assert.Contains("not measured", Row(lines, 306, "| engine (`alexnet bench`)"));
        Assert.StartsWith("| engine max-fp16 (`alexnet bench`, fp16) | 50000.0 |", Row(lines, 306, "| engine max-fp16"));
        Assert.Contains("Engine run bf16: not shown (bench-bf16.json was not written).", lines);
        Assert.Contains("Engine run epilogue-cublaslt: not shown (bench-epilogue-cublaslt.json is empty: the run wrote nothing (its error is in the step's log)).", lines);
    }

    [SkippableFact]
    public void SummaryNamesMissingInputsInsteadOfFailing()
    {
        NumpyReference.Require();
        using var dir = new TempDir();
        string bench = dir.Write("bench.json", "{ not json"u8.ToArray());
        string summary = dir.File("summary.md");
        (int exit, string output) = NumpyReference.Run([Path.Combine(Scripts, "summarize.py"), "--out", summary, "--bench", bench,
            "--pytorch", dir.File("pytorch.json")]);
        Assert.True(exit == 0, output);
        string text = File.ReadAllText(summary);
        Assert.Contains("bench.json is not readable JSON", text);
        Assert.Contains("PyTorch: not compared (pytorch.json was not written)", text);
    }

    [SkippableFact]
    public void PyTorchLayoutsComputeWhatTheWeightFilesDo()
    {
        NumpyReference.Require();
        // Random weights of the real input shapes (few outputs for the fully-connected layers): the converted
        // OIHW convolutions and the reordered fc6 must give the originals' results, and a plain transpose of
        // fc6 or a wrong convolution layout must be caught.
        const string Code = """
            import sys
            import numpy as np
            sys.path.insert(0, sys.argv[1])
            import pytorch_alexnet as p
            rng = np.random.default_rng(3)
            shapes = {"conv1": (11, 11, 3, 96), "conv2": (5, 5, 48, 256), "conv3": (3, 3, 256, 384), "conv4": (3, 3, 192, 384),
                      "conv5": (3, 3, 192, 256), "fc6": (9216, 7), "fc7": (7, 5), "fc8": (5, 3)}
            w = {k: (rng.standard_normal(s), rng.standard_normal(s[-1])) for k, s in shapes.items()}
            c = p.torch_layouts(w)
            print("good", p.check_layouts(w, c))
            assert c["conv2"][0].shape == (256, 48, 5, 5) and c["fc6"][0].shape == (7, 9216) and c["fc8"][0].shape == (3, 5)
            bad = dict(c)
            bad["fc6"] = (np.ascontiguousarray(w["fc6"][0].T), w["fc6"][1])
            bad["conv4"] = (np.ascontiguousarray(w["conv4"][0].transpose(3, 2, 1, 0)), w["conv4"][1])
            print("bad", p.check_layouts(w, bad))
            """;
        (int exit, string output) = NumpyReference.Run(["-c", Code, Scripts]);
        Assert.True(exit == 0, output);
        Assert.Contains("good []", output);
        Assert.Contains("conv4: OIHW weights do not match", output);
        Assert.Contains("fc6: the reordered weights do not read pool5", output);
        Assert.DoesNotContain("conv2: OIHW", output);
    }

    [SkippableFact]
    public void PyTorchScriptWithoutPyTorchSaysSoAndExitsTwo()
    {
        NumpyReference.Require();
        Skip.If(NumpyReference.Run(["-c", "import torch"]).Code == 0, "PyTorch is installed here");
        using var dir = new TempDir();
        (int exit, string output) = NumpyReference.Run([Path.Combine(Scripts, "pytorch_alexnet.py"), "--weights", dir.File("w.npz"),
            "--out", dir.File("pytorch.json"), dir.File("image0.png")]);
        Assert.Equal(2, exit);
        Assert.Contains("PyTorch is not installed", output);
        Assert.False(File.Exists(dir.File("pytorch.json")));
    }

    [SkippableFact]
    public void BuildScriptCountsThePayloadAndRefusesOneOverTheLimit()
    {
        Skip.IfNot(Directory.Exists(RepositoryFiles.PathOf(".git")) || File.Exists(RepositoryFiles.PathOf(".git")), "not a git checkout");
        (int code, string listing) = Run("git", ["-C", RepositoryFiles.Root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"]);
        Assert.True(code == 0, listing);
        long expected = listing.Split('\0', StringSplitOptions.RemoveEmptyEntries)
            .Select(RepositoryFiles.PathOf).Where(File.Exists).Sum(f => new FileInfo(f).Length);
        string aot = RepositoryFiles.PathOf(".build/aot");
        if (Directory.Exists(aot)) expected += Directory.EnumerateFiles(aot, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);

        (int ok, string printed) = Run("/bin/bash", [Path.Combine(Scripts, "build.sh"), "--payload-only"]);
        Assert.True(ok == 0, printed);
        string mib = printed.Split(' ')[1];
        Assert.Equal(expected / 1048576.0, double.Parse(mib, CultureInfo.InvariantCulture), 0.051);

        (int over, string refused) = Run("/bin/bash", [Path.Combine(Scripts, "build.sh"), "--payload-only"], ("ALEXNET_PAYLOAD_LIMIT_MIB", "0"));
        Assert.Equal(1, over);
        Assert.Contains("the payload is over 0 MiB; the largest files:", refused);
    }

    [Theory]
    [InlineData("missing")]
    [InlineData("not executable")]
    [InlineData("a folder")]
    public void WithoutTheBinaryTheChecksStopAtOnceWithOneLine(string how)
    {
        using var dir = new TempDir();
        string exe = dir.File("alexnet");
        if (how == "not executable") File.WriteAllText(exe, "#!/bin/sh\nexit 0\n");
        if (how == "a folder") Directory.CreateDirectory(exe);
        string results = dir.File("results");
        var clock = Stopwatch.StartNew();
        (int code, string stdout, string stderr) = RunSeparately("/bin/bash", [Path.Combine(Scripts, "run-checks.sh")],
            ("ALEXNET_GPU_CHECK_EXE", exe), ("OUT", results), ("PYTHON", dir.File("no-python")));
        TimeSpan elapsed = clock.Elapsed;

        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        string line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(exe, line);
        Assert.Contains("bash Bench/gpu/build.sh", line);
        Assert.Contains("git ignores it", line);
        Assert.False(Directory.Exists(results), "the script did work before finding the binary missing");
        // The whole run takes minutes; without the binary it must not get as far as its first step.
        Assert.True(elapsed < TimeSpan.FromSeconds(2), $"took {elapsed.TotalSeconds:F2} s");
    }

    [Fact]
    public void EveryEngineCommandOfTheChecksRunsVerbose()
    {
        string[] commands = File.ReadAllLines(Path.Combine(Scripts, "run-checks.sh"))
            .Where(l => l.TrimStart().StartsWith("\"$EXE\" ", StringComparison.Ordinal)).ToArray();
        // info, check twice, bench, features, bench kernels, bench_mode (every other bench run: --fuse off, --graph off,
        // --epilogue kernel and cublaslt, --precision tf32, fp16 and bf16, --batch max in fp32 and fp16, --workspace l2),
        // classify, classify of the crafted files.
        Assert.Equal(9, commands.Length);
        Assert.All(commands, c => Assert.Contains(" --verbose", c));
    }

    [Fact]
    public void TheScriptPutsTheWheelFoldersTheEngineProbesOnTheLoadersPathInTheSameOrder()
    {
        // The environment-driven part of both lists (virtual and conda environments, the user's site-packages)
        // over one temporary tree: the script's LD_LIBRARY_PATH must name what the engine searches.
        using var dir = new TempDir();
        string venv = dir.File("venv"), conda = dir.File("conda"), home = dir.File("home");
        foreach (string folder in new[]
        {
            "venv/lib/python3.12/site-packages/nvidia/cu13/lib", "venv/lib/python3.9/site-packages/nvidia/cublas/lib",
            "venv/lib/python3.12/site-packages/nvidia/cuda_nvrtc/lib", "venv/lib/python3.12/dist-packages/nvidia/x/lib",
            "conda/lib/python3.10/site-packages/nvidia/cublas/lib", "home/.local/lib/python3.11/site-packages/nvidia/cudnn/lib",
            "home/.local/lib/python3.11/site-packages/nvidia/headers_only/include",
        })
            Directory.CreateDirectory(dir.File(folder));
        (string Name, string Value)[] environment = [("VIRTUAL_ENV", venv), ("CONDA_PREFIX", conda), ("HOME", home)];
        (int code, string listed, string error) = RunSeparately("/bin/bash",
            ["-c", "source <(sed -n '/^library_folders()/,/^}/p' \"$1\") && library_folders", "-", Path.Combine(Scripts, "run-checks.sh")], environment);
        Assert.True(code == 0, error);
        string[] script = listed.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(f => f.StartsWith(dir.Path, StringComparison.Ordinal)).ToArray();
        string[] engine = NativeLibraries.SearchFolders("/", name => environment.FirstOrDefault(e => e.Name == name).Value)
            .Where(f => f.StartsWith(dir.Path, StringComparison.Ordinal)).ToArray();
        Assert.Equal(5, engine.Length);
        Assert.Equal(engine, script);
    }

    private static object Comparison(double relative, int images) =>
        new { max_abs_diff = relative * 300, relative, top1_agree = images, images };

    private static object Logits(double relative, int images, bool pass) =>
        new { vs_numpy = Comparison(relative, images), vs_engine = Comparison(relative, images), pass };

    private static object Timed(int batch, double imagesPerSecond, object logits) =>
        new { batch, median_ms = batch / imagesPerSecond * 1000, min_ms = batch / imagesPerSecond * 900, images_per_second = imagesPerSecond, logits };

    /// <summary>The table row starting with <paramref name="prefix"/> under the heading of batch <paramref name="batch"/>.</summary>
    private static string Row(string[] lines, int batch, string prefix)
    {
        int start = Array.IndexOf(lines, $"### Batch {batch}");
        Assert.True(start >= 0, $"no section for batch {batch}:\n{string.Join('\n', lines)}");
        return lines.Skip(start + 1).TakeWhile(l => !l.StartsWith("##", StringComparison.Ordinal))
            .Single(l => l.StartsWith(prefix, StringComparison.Ordinal));
    }

    private static double Ratio(string[] lines, int batch, string prefix)
    {
        string[] cells = Row(lines, batch, prefix).Split('|', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        return double.Parse(cells[^1], CultureInfo.InvariantCulture);
    }

    private static (int Code, string Stdout, string Stderr) RunSeparately(string program, IEnumerable<string> args,
        params (string Name, string Value)[] environment)
    {
        var psi = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach ((string name, string value) in environment) psi.Environment[name] = value;
        using Process p = Process.Start(psi)!;
        Task<string> error = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output, error.Result);
    }

    private static (int Code, string Output) Run(string program, IEnumerable<string> args, params (string Name, string Value)[] environment)
    {
        var psi = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach ((string name, string value) in environment) psi.Environment[name] = value;
        using Process p = Process.Start(psi)!;
        Task<string> error = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output + error.Result);
    }
}
