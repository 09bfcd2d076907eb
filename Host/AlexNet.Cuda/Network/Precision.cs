using AlexNet.Cuda.Devices;

namespace AlexNet.Cuda.Network;

/// <summary>
/// The number formats a forward pass runs in. Every kernel computes in float whatever the precision (LRN's
/// power, the softmax's exponentials and sums included); what changes is how activations and weights are
/// stored and how the GEMMs multiply. The probabilities are FP32 in every precision.
/// </summary>
public enum Precision
{
    /// <summary>FP32 storage, FP32 SGEMM: the reference the others are measured against.</summary>
    Fp32,

    /// <summary>FP32 storage; the GEMMs round their inputs to TF32 (10 mantissa bits) on tensor cores and
    /// accumulate in FP32 (what PyTorch's cuDNN convolutions do by default).</summary>
    Tf32,

    /// <summary>Weights and activations stored as IEEE fp16; GEMMs on fp16 inputs with FP32 accumulation.</summary>
    Fp16,

    /// <summary>Weights and activations stored as bfloat16; GEMMs on bf16 inputs with FP32 accumulation.</summary>
    Bf16,
}

/// <summary>Names, storage and GEMM math of each <see cref="Precision"/>, and which a device runs.</summary>
public static class Precisions
{
    /// <summary>Every precision, in the order help and <c>info</c> list them.</summary>
    public static IReadOnlyList<Precision> All { get; } = [Precision.Fp32, Precision.Tf32, Precision.Fp16, Precision.Bf16];

    /// <summary>The command-line name: fp32, tf32, fp16, bf16.</summary>
    public static string Name(Precision precision) => precision switch
    {
        Precision.Tf32 => "tf32",
        Precision.Fp16 => "fp16",
        Precision.Bf16 => "bf16",
        _ => "fp32",
    };

    /// <summary>The precision named <paramref name="name"/> (case-insensitive), or null.</summary>
    public static Precision? Parse(string? name) => name?.ToLowerInvariant() switch
    {
        "fp32" => Precision.Fp32,
        "tf32" => Precision.Tf32,
        "fp16" => Precision.Fp16,
        "bf16" => Precision.Bf16,
        _ => null,
    };

    /// <summary>How activations, the lowering and the weights are stored.</summary>
    public static ElementFormat Storage(Precision precision) => precision switch
    {
        Precision.Fp16 => ElementFormat.Half,
        Precision.Bf16 => ElementFormat.BFloat16,
        _ => ElementFormat.Float32,
    };

    /// <summary>How the GEMMs multiply.</summary>
    public static GemmMath Math(Precision precision) => precision == Precision.Tf32 ? GemmMath.Tf32 : GemmMath.Default;

    /// <summary>Whether <paramref name="device"/> runs <paramref name="precision"/>; when not, <paramref name="reason"/>
    /// says why (its GEMM provider or its compute capability lacks the GEMM).</summary>
    public static bool IsSupported(ComputeDevice device, Precision precision, out string? reason)
    {
        ArgumentNullException.ThrowIfNull(device);
        return device.SupportsGemm(Storage(precision), Math(precision), out reason);
    }

    /// <summary>The precisions <paramref name="device"/> runs, in <see cref="All"/>'s order.</summary>
    public static IReadOnlyList<Precision> SupportedBy(ComputeDevice device) => [.. All.Where(p => IsSupported(device, p, out _))];

    /// <summary>
    /// The accuracy each precision is held to against FP32 over the full-size network (the largest |Δ| of any
    /// probability, and the share of images whose top-1 class agrees): the bounds the tests and
    /// <c>alexnet check</c> assert, measured in docs/performance.md.
    /// </summary>
    public static (double MaxProbabilityError, double TopOneAgreement) Tolerance(Precision precision) => precision switch
    {
        Precision.Tf32 => (3e-3, 0.99),
        Precision.Fp16 => (1e-2, 0.99),
        Precision.Bf16 => (3e-2, 0.99),
        _ => (0, 1),
    };
}
