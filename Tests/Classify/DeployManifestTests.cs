using System.Text.RegularExpressions;
using AlexNet.Cuda.Tests.Weights;

namespace AlexNet.Cuda.Tests.Classify;

/// <summary>deploy/: the Job's classify command line, the extraction rule that reads it, and the container recipe.</summary>
public class DeployManifestTests
{
    private static string JobText => File.ReadAllText(DeployManifest.JobPath);

    /// <summary>Problems of the repository's manifest with <paramref name="old"/> replaced by <paramref name="replacement"/>.</summary>
    private static IReadOnlyList<string> ProblemsWith(string old, string replacement)
    {
        string text = JobText;
        Assert.Contains(old, text);
        using var dir = new TempDir();
        return DeployManifest.Problems(dir.Write("job.yaml", System.Text.Encoding.UTF8.GetBytes(text.Replace(old, replacement, StringComparison.Ordinal))));
    }

    private static IReadOnlyList<string> ArgumentsOf(string yaml)
    {
        using var dir = new TempDir();
        return DeployManifest.ClassifyArguments(dir.Write("job.yaml", System.Text.Encoding.UTF8.GetBytes(yaml)));
    }

    [Fact]
    public void TheJobManifestHasNoProblems()
    {
        Assert.Empty(DeployManifest.Problems(DeployManifest.JobPath));
    }

    [Fact]
    public void TheExtractedArgumentsAreTheClassifyCommandWithTheShardPlaceholder()
    {
        int shards = DeployManifest.Number(DeployManifest.JobPath, "completions");
        Assert.True(shards >= 2, $"completions {shards}: a sharded Job has at least two shards");
        Assert.Equal(
            ["classify", "--weights", "/data/bvlc_alexnet.npy", "--device", "cuda", "--format", "json",
             "--shard", $"$(JOB_COMPLETION_INDEX)/{shards}", "/data/images"],
            DeployManifest.ClassifyArguments(DeployManifest.JobPath));
    }

    [Fact]
    public void TheRuleJoinsContinuedLinesAndStopsAtTheFirstShellOperator()
    {
        const string yaml = """
            # alexnet classify --weights in a comment is not the command
            args:
              - |
                echo alexnet is not first here
                alexnet classify --weights /data/w.npy \
                  --top 5 \
                  /data/a /data/b 2>/dev/null | tee out
            """;
        Assert.Equal(["classify", "--weights", "/data/w.npy", "--top", "5", "/data/a", "/data/b"], ArgumentsOf(yaml));
        Assert.Equal(["classify", "x"], ArgumentsOf("  alexnet classify x && echo done\n"));
        Assert.Equal(["classify", "x"], ArgumentsOf("  alexnet classify x >>out; echo done\n"));
        Assert.Equal(["classify", "x"], ArgumentsOf("  alexnet classify x 2>&1\n"));
        Assert.Equal(["classify", "x", "y"], ArgumentsOf("  alexnet classify x y\n"));
    }

    [Theory]
    [InlineData("echo no command here\n", "0 lines start with the word alexnet")]
    [InlineData("alexnet classify a\nalexnet classify b\n", "2 lines start with the word alexnet")]
    [InlineData("alexnet classify --weights \"/data/my weights.npy\" /data/images\n", "quotes a word")]
    public void TheRuleRefusesAManifestItCannotRead(string yaml, string message)
    {
        var e = Assert.Throws<InvalidDataException>(() => ArgumentsOf(yaml));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void EveryOptionOfClassifyIsAcceptedWithAWellFormedValue()
    {
        Assert.Empty(ProblemsWith("--format json", "--format json --batch 64 --top 5 --labels /data/labels.txt --resize crop " +
                                                   "--mean 104,117,123.5 --workers 8 /data/more-images /data/one.jpg"));
        Assert.Empty(ProblemsWith("--format json", "--format json --resize stretch --mean -1.5,0,1e2"));
    }

    [Theory]
    [InlineData("--device cuda", "--device gpu", "--device gpu: not auto, cuda or opencl")]
    [InlineData("--device cuda", "--device auto", "--device is not cuda")]
    [InlineData("--format json", "--format yaml", "--format yaml: not text or json")]
    [InlineData("--format json", "--format text", "--format is not json")]
    [InlineData("--format json", "--format json --top 0", "--top 0: not a positive whole number")]
    [InlineData("--format json", "--format json --batch -8", "--batch -8: not a positive whole number")]
    [InlineData("--format json", "--format json --workers many", "--workers many: not a positive whole number")]
    [InlineData("--format json", "--format json --resize fit", "--resize fit: not stretch or crop")]
    [InlineData("--format json", "--format json --mean 104,117", "--mean 104,117: not three numbers B,G,R")]
    [InlineData("--format json", "--format json --mean 104,117,x", "--mean 104,117,x: not three numbers B,G,R")]
    [InlineData("--format json", "--format json --colour red", "--colour is not an option of classify")]
    [InlineData("--format json", "--format json -v", "-v is not an option of classify")]
    [InlineData("--format json", "--format json --batch 64 --batch 32", "--batch is given twice")]
    [InlineData("--format json", "--format json --labels", "--labels has no value")]
    [InlineData("--format json", "--format json --labels labels.txt", "--labels labels.txt: not an absolute path under a mounted volume (/data/)")]
    [InlineData("--weights /data/bvlc_alexnet.npy", "--weights bvlc_alexnet.npy", "--weights bvlc_alexnet.npy: not an absolute path under a mounted volume (/data/)")]
    [InlineData("--weights /data/bvlc_alexnet.npy ", "", "--weights is missing")]
    [InlineData("/4 /data/images", "/4 /images", "IMAGE|DIR /images: not an absolute path under a mounted volume (/data/)")]
    [InlineData("/4 /data/images", "/4", "no IMAGE or DIR is given")]
    [InlineData("$(JOB_COMPLETION_INDEX)/4 /data", "$(JOB_COMPLETION_INDEX)/3 /data", "--shard $(JOB_COMPLETION_INDEX)/3: expected $(JOB_COMPLETION_INDEX)/4 (the pod's index of completions 4)")]
    [InlineData("$(JOB_COMPLETION_INDEX)/4 /data", "0/4 /data", "--shard 0/4: expected $(JOB_COMPLETION_INDEX)/4 (the pod's index of completions 4)")]
    [InlineData("--shard $(JOB_COMPLETION_INDEX)/4 ", "", "--shard is missing: every pod would classify every image")]
    [InlineData("alexnet classify", "alexnet info", "the command is not `alexnet classify` but `alexnet info --weights")]
    [InlineData("parallelism: 4", "parallelism: 2", "parallelism 2 differs from completions 4")]
    [InlineData("completionMode: Indexed", "completionMode: NonIndexed", "the Job is not completionMode: Indexed")]
    [InlineData("nvidia.com/gpu: 1", "nvidia.com/gpu: 2", "the pod does not ask for one GPU (nvidia.com/gpu: 1)")]
    [InlineData("persistentVolumeClaim:", "emptyDir:", "no volume is a persistentVolumeClaim")]
    [InlineData("shard-$(JOB_COMPLETION_INDEX).jsonl", "shard.jsonl", "the output file is not named by the index (shard-$(JOB_COMPLETION_INDEX).…)")]
    public void AWrongManifestIsReported(string old, string replacement, string problem)
    {
        IReadOnlyList<string> problems = ProblemsWith(old, replacement);
        Assert.Contains(problems, p => p.StartsWith(problem, StringComparison.Ordinal));
    }

    [Fact]
    public void TheShardCountFollowsCompletions()
    {
        // N written consistently in all three places is fine whatever N is.
        string text = JobText;
        string eight = Regex.Replace(text, @"(completions|parallelism): 4\b", "$1: 8");
        eight = eight.Replace("$(JOB_COMPLETION_INDEX)/4", "$(JOB_COMPLETION_INDEX)/8", StringComparison.Ordinal);
        Assert.NotEqual(text, eight);
        using var dir = new TempDir();
        string path = dir.Write("job.yaml", System.Text.Encoding.UTF8.GetBytes(eight));
        Assert.Empty(DeployManifest.Problems(path));
        Assert.Equal(8, DeployManifest.Number(path, "completions"));
    }

    [Fact]
    public void TheImageIsTheCuda13RuntimeWithTheNativeAotBinaryAsEntryPoint()
    {
        string[] lines = File.ReadAllLines(RepositoryFiles.PathOf("deploy/Dockerfile"));
        string[] instructions = lines.Where(l => l.Length > 0 && !l.StartsWith('#') && !char.IsWhiteSpace(l[0])).ToArray();

        string from = Assert.Single(instructions, l => l.StartsWith("FROM ", StringComparison.Ordinal));
        Assert.Matches(@"^FROM nvidia/cuda:13\.\d+\.\d+-runtime-ubuntu24\.04$", from);

        // What Bench/gpu/build.sh writes is what the image copies.
        Assert.Contains("\"$root/.build/aot\"", File.ReadAllText(RepositoryFiles.PathOf("Bench/gpu/build.sh")));
        string copy = Assert.Single(instructions, l => l.StartsWith("COPY ", StringComparison.Ordinal));
        string[] copyWords = copy.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // The binary and SkiaSharp's native decoders, which the binary loads from its own folder.
        Assert.Equal(["COPY", ".build/aot/alexnet", ".build/aot/libSkiaSharp.so", "/usr/local/bin/"], copyWords);
        string[] ignore = File.ReadAllLines(RepositoryFiles.PathOf("deploy/Dockerfile.dockerignore"));
        Assert.Contains("!.build/aot/alexnet", ignore);
        Assert.Contains("!.build/aot/libSkiaSharp.so", ignore);

        string entry = Assert.Single(instructions, l => l.StartsWith("ENTRYPOINT ", StringComparison.Ordinal));
        Assert.Equal("ENTRYPOINT [\"/usr/local/bin/alexnet\"]", entry);

        // The Job's shell finds `alexnet` on PATH: /usr/local/bin is on the CUDA images' PATH.
        Assert.Equal("/usr/local/bin/", copyWords[^1]);
        Assert.Contains("command: [\"/bin/sh\", \"-c\"]", JobText);
    }
}
