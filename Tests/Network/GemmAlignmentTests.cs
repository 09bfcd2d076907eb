using AlexNet.Cuda.Network;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Network;

/// <summary>
/// What the forward pass hands cuBLAS, for every batch size 1…256 and several workspace sizes, through the
/// engine's own forward pass on a <see cref="RecordingDevice"/>: every operand address and batch stride, and
/// every leading dimension, is a multiple of 4 floats (16 bytes, what cuBLAS's vectorised loads need) except
/// where the shapes force otherwise. The exceptions, all stated here: conv1's filter rows (K = 3·11·11 = 363);
/// a GEMM output's row of N·Ho·Wo floats and the last chunk's lowered rows when the batch is not a multiple of
/// 4 (every Ho·Wo of AlexNet is odd); and the chunk offsets of a workspace too small to hold 4 images.
/// </summary>
public class GemmAlignmentTests(ZeroWeights zeros) : IClassFixture<ZeroWeights>
{
    /// <summary>BVLC AlexNet's GEMMs as docs/network.md lists them, in cuBLAS's column-major terms: the
    /// convolutions as (Ho·Wo, Cout per group, K), the fully connected layers as (outputs, K).</summary>
    private static readonly (string Name, int Pixels, int Filters, int K)[] Convolutions =
    [
        ("conv1", 55 * 55, 96, 3 * 11 * 11), ("conv2", 27 * 27, 128, 48 * 5 * 5), ("conv3", 13 * 13, 384, 256 * 3 * 3),
        ("conv4", 13 * 13, 192, 192 * 3 * 3), ("conv5", 13 * 13, 128, 192 * 3 * 3),
    ];

    private static readonly (string Name, int Outputs, int K)[] FullyConnected = [("fc6", 4096, 9216), ("fc7", 4096, 4096), ("fc8", 1000, 4096)];

    public static TheoryData<int, long> Plans() => new()
    {
        { 256, AlexNetOptions.DefaultWorkspaceBytes }, // chunks of 60, 36, 172, 112, 112 (61, 38, 172, 114, 114 fit)
        { 256, 100L << 20 },
        { 256, 40L << 20 },
        { 256, 17L << 20 }, // conv1 holds 4 images, conv2 only 2
        { 256, 7L << 20 },  // conv1 and conv2 hold 1 image each
        { 100, AlexNetOptions.DefaultWorkspaceBytes },
        { 38, AlexNetOptions.DefaultWorkspaceBytes }, // conv2's 38 images fit: one chunk
    };

    [Theory]
    [MemberData(nameof(Plans))]
    public void EveryGemmOperandIs16ByteAlignedUnlessTheShapeForbidsIt(int maxBatch, long workspaceBytes)
    {
        using var device = new RecordingDevice();
        using AlexNetModel model = AlexNetModel.Create(device, zeros.Weights, new AlexNetOptions { MaxBatch = maxBatch, WorkspaceBytes = workspaceBytes });
        long workspaceFloats = workspaceBytes / sizeof(float);
        var failures = new List<string>();
        for (int n = 1; n <= maxBatch; n++)
        {
            device.Gemms.Clear();
            model.Run(n);
            var byLayer = device.Gemms.GroupBy(Layer).ToDictionary(g => g.Key, g => g.ToList());
            Assert.Equal(8, byLayer.Count);
            foreach ((string name, int pixels, int filters, int k) in Convolutions)
            {
                List<RecordedGemm> chunks = byLayer[name];
                long lowered = (long)pixels * k * (name is "conv1" or "conv3" ? 1 : 2);
                // Fewer than 4 images per chunk cannot keep the chunks' offsets aligned: the workspace forces it.
                bool roomyWorkspace = workspaceFloats / lowered >= 4 || chunks.Count == 1;
                long firstC = chunks[0].AddressC;
                long columns = 0;
                for (int c = 0; c < chunks.Count; c++)
                {
                    RecordedGemm g = chunks[c];
                    string where = $"batch {n}, {name} chunk {c}: {g}";
                    // The chunks cover the batch in order, each starting where the one before ended.
                    if (g.AddressC != firstC + columns * sizeof(float)) failures.Add($"{where}: not contiguous");
                    columns += g.M;
                    if (roomyWorkspace && !AllAligned(g)) failures.Add($"{where}: an address or batch stride is not 16-byte aligned");
                    if (g.Ldb % 4 != 0 && k % 4 == 0) failures.Add($"{where}: the filters' ld {g.Ldb} is not a multiple of 4");
                    if (g.Ldc % 4 == 0 != (n % 4 == 0)) failures.Add($"{where}: the output's ld {g.Ldc} against batch {n}");
                    bool lastOfAnUnevenBatch = c == chunks.Count - 1 && n % 4 != 0;
                    if (g.Lda % 4 != 0 && roomyWorkspace && !lastOfAnUnevenBatch) failures.Add($"{where}: the lowered input's ld {g.Lda} is not a multiple of 4");
                }
                if (columns != (long)n * pixels) failures.Add($"batch {n}, {name}: the chunks cover {columns} columns, not {n}·{pixels}");
            }
            foreach ((string name, int outputs, int k) in FullyConnected)
            {
                RecordedGemm g = Assert.Single(byLayer[name]);
                if (!AllAligned(g) || g.Lda % 4 != 0 || g.Ldb % 4 != 0 || g.Ldc % 4 != 0) failures.Add($"batch {n}, {name}: {g}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} misaligned GEMMs, the first:\n{string.Join("\n", failures.Take(10))}");
    }

    [Fact]
    public void TheForwardPassAllocatesAndSynchronisesNothing()
    {
        using var device = new RecordingDevice();
        using AlexNetModel model = AlexNetModel.Create(device, zeros.Weights, new AlexNetOptions { MaxBatch = 256 });
        int[] batches = [1, 37, 64, 255, 256];
        foreach (int n in batches) model.Run(n); // warm: the JIT compiles the pass
        int allocations = device.Allocations;
        device.Synchronizations = 0;
        long before = GC.GetAllocatedBytesForCurrentThread();
        foreach (int n in batches)
        {
            device.Gemms.Clear();
            model.Run(n);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(allocations, device.Allocations);
        Assert.Equal(0, device.Synchronizations);
    }

    [Fact]
    public void ThePlanShowsTheChunksAndWhyTheyAreMultiplesOf4()
    {
        using var device = new RecordingDevice();
        using AlexNetModel model = AlexNetModel.Create(device, zeros.Weights, new AlexNetOptions { MaxBatch = 256 });
        Assert.Equal([60, 36, 172, 112, 112], model.Plan.Convolutions.Select(c => c.ChunkImages));
        Assert.Equal([61, 38, 172, 114, 114], model.Plan.Convolutions.Select(c => c.WorkspaceImages));
        string text = model.Plan.ToString();
        Assert.Contains("conv1: GEMM M=96 N=60x3025 K=363 batch 1; chunks of 60 images (the workspace holds 61, rounded down so every chunk's GEMM operands are 16-byte aligned), 5 at batch 256", text);
        Assert.Contains("conv2: GEMM M=128 N=36x729 K=1200 batch 2; chunks of 36 images (the workspace holds 38, rounded down", text);
        Assert.Contains("conv3: GEMM M=384 N=172x169 K=2304 batch 1; chunks of 172 images (as many as the workspace holds), 2 at batch 256", text);

        using AlexNetModel small = AlexNetModel.Create(device, zeros.Weights, new AlexNetOptions { MaxBatch = 32 });
        Assert.All(small.Plan.Convolutions, c => Assert.Equal(32, c.ChunkImages));
        Assert.Contains("conv2: GEMM M=128 N=32x729 K=1200 batch 2; one chunk: the workspace holds the whole batch (38 images' lowering)", small.Plan.ToString());

        using AlexNetModel tight = AlexNetModel.Create(device, zeros.Weights, new AlexNetOptions { MaxBatch = 8, WorkspaceBytes = 7L << 20 });
        Assert.Contains("conv2: GEMM M=128 N=1x729 K=1200 batch 2; chunks of 1 image (all the workspace holds, too few to round to a multiple of 4", tight.Plan.ToString());
    }

    [Theory]
    [InlineData(3025, 61, 256, 60)]
    [InlineData(729, 38, 256, 36)]
    [InlineData(169, 172, 256, 172)]
    [InlineData(169, 114, 256, 112)]
    [InlineData(169, 114, 100, 100)] // the whole batch fits: one chunk, nothing to align between chunks
    [InlineData(169, 114, 114, 114)]
    [InlineData(169, 114, 115, 112)]
    [InlineData(729, 3, 256, 3)]     // fewer than 4: kept
    [InlineData(729, 4, 256, 4)]
    [InlineData(730, 5, 256, 4)]     // Ho·Wo twice an odd number: pairs of images suffice
    [InlineData(730, 3, 256, 2)]
    [InlineData(196, 7, 256, 7)]     // Ho·Wo a multiple of 4: any chunk is aligned
    public void TheChunkIsTheWorkspacesFitRoundedToWhatKeepsTheColumnsAligned(int pixels, long fit, int maxBatch, int expected)
    {
        int chunk = ConvolutionPlan.ChunkFor(pixels, fit, maxBatch);
        Assert.Equal(expected, chunk);
        Assert.True(chunk <= fit || chunk == maxBatch && fit >= maxBatch);
    }

    private static bool AllAligned(RecordedGemm g) =>
        g.AddressA % 16 == 0 && g.AddressB % 16 == 0 && g.AddressC % 16 == 0
        && (g.BatchCount == 1 || g.StrideA % 4 == 0 && g.StrideB % 4 == 0 && g.StrideC % 4 == 0);

    /// <summary>The layer a GEMM belongs to, from its shape alone (the tables above).</summary>
    private static string Layer(RecordedGemm g)
    {
        foreach ((string name, int pixels, int filters, int k) in Convolutions)
            if (g.K == k && g.N == filters && g.M % pixels == 0) return name;
        foreach ((string name, int outputs, int k) in FullyConnected)
            if (g.K == k && g.M == outputs) return name;
        throw new Xunit.Sdk.XunitException($"a GEMM of no AlexNet layer: {g}");
    }
}

/// <summary>BVLC AlexNet's shapes, all zeros (233 MiB), made once for the tests of a class: the recording device
/// computes nothing, so only the shapes matter.</summary>
public sealed class ZeroWeights
{
    public AlexNetWeights Weights { get; } = new(AlexNetArchitecture.Default, AlexNetArchitecture.Default.Layers
        .Select(spec => new LayerWeights(spec, new float[spec.WeightCount], new float[spec.OutputChannels], "zeros")).ToList());
}
