using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using AlexNet.Cuda.Backends;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Tests.Network;

namespace AlexNet.Cuda.Tests.Interop;

/// <summary>
/// The cuBLASLt binding against the real library, where no GPU is needed: cuBLASLt's descriptors and layouts are host
/// structures, and its setters refuse a value whose size is not the attribute's (CUBLAS_STATUS_INVALID_VALUE). So every
/// attribute the engine sets is checked here for its number and its size, and the plan of the fully connected GEMM is
/// read back attribute by attribute: what remains for a GPU is the heuristic and the matmul itself
/// (<c>alexnet check --device cuda</c>, "epilogue: …").
/// </summary>
public unsafe class CublasLtBindingTests
{
    [Fact]
    public void TheStructsHaveCublasLtHsSizesAndOffsets()
    {
        // cublasLtMatmulAlgo_t is uint64_t[8]; cublasLtMatmulHeuristicResult_t is { algo; size_t workspaceSize;
        // cublasStatus_t state; float wavesCount; int reserved[4]; }.
        Assert.Equal(64, Unsafe.SizeOf<CublasLtMatmulAlgo>());
        Assert.Equal(96, Unsafe.SizeOf<CublasLtHeuristicResult>());
        Assert.Equal(64, (int)Marshal.OffsetOf<CublasLtHeuristicResult>(nameof(CublasLtHeuristicResult.WorkspaceSize)));
        Assert.Equal(72, (int)Marshal.OffsetOf<CublasLtHeuristicResult>(nameof(CublasLtHeuristicResult.State)));
        Assert.Equal(76, (int)Marshal.OffsetOf<CublasLtHeuristicResult>(nameof(CublasLtHeuristicResult.WavesCount)));
        Assert.Equal(4, sizeof(CublasLtEpilogue));
        Assert.Equal(6u, (uint)CublasLtEpilogue.ReluBias);
    }

    [SkippableFact]
    public void EverySetterIsAcceptedAndAValueOfAnotherSizeIsRefused()
    {
        TestNative.Require(NativeLibraryId.CublasLt);
        CublasLtException.ThrowIfFailed(CublasLt.cublasLtMatmulDescCreate(out IntPtr desc, CublasComputeType.Compute32F, CudaDataType.R32F));
        CublasLtException.ThrowIfFailed(CublasLt.cublasLtMatmulPreferenceCreate(out IntPtr preference));
        try
        {
            Assert.Equal(CublasStatus.Success, CublasLt.SetOperation(desc, CublasLtMatmulDescAttribute.TransA, CublasOperation.Transpose));
            Assert.Equal(CublasStatus.Success, CublasLt.SetOperation(desc, CublasLtMatmulDescAttribute.TransB, CublasOperation.None));
            Assert.Equal(CublasStatus.Success, CublasLt.SetEpilogue(desc, CublasLtEpilogue.ReluBias));
            Assert.Equal(CublasStatus.Success, CublasLt.SetBiasPointer(desc, 0x7f00_0000_1200));
            Assert.Equal(CublasStatus.Success, CublasLt.SetMaxWorkspace(preference, 32UL << 20));
            foreach (CublasLtPreferenceAttribute a in new[] { CublasLtPreferenceAttribute.MinAlignmentABytes, CublasLtPreferenceAttribute.MinAlignmentBBytes,
                         CublasLtPreferenceAttribute.MinAlignmentCBytes, CublasLtPreferenceAttribute.MinAlignmentDBytes })
                Assert.Equal(CublasStatus.Success, CublasLt.SetMinAlignment(preference, a, 16));

            // The same attributes with a value of the wrong width: refused, so the acceptances above say something.
            long wide = 1;
            int narrow = 1;
            Assert.Equal(CublasStatus.InvalidValue, CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.TransA, &wide, sizeof(long)));
            Assert.Equal(CublasStatus.InvalidValue, CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.Epilogue, &wide, sizeof(long)));
            Assert.Equal(CublasStatus.InvalidValue, CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.BiasPointer, &narrow, sizeof(int)));
            Assert.Equal(CublasStatus.InvalidValue, CublasLt.cublasLtMatmulPreferenceSetAttribute(preference, CublasLtPreferenceAttribute.MaxWorkspaceBytes, &narrow, sizeof(int)));
            Assert.Equal(CublasStatus.InvalidValue, CublasLt.cublasLtMatmulPreferenceSetAttribute(preference, CublasLtPreferenceAttribute.MinAlignmentABytes, &wide, sizeof(long)));
            // BIAS_DATA_TYPE (cuBLASLt 11.8 and later) is an int32_t cudaDataType: the number is the header's.
            int floatType = (int)CudaDataType.R32F;
            Assert.Equal(CublasStatus.Success, CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.BiasDataType, &floatType, sizeof(int)));

            Assert.Equal(6u, DescAttribute<uint>(desc, CublasLtMatmulDescAttribute.Epilogue));
            Assert.Equal(1, DescAttribute<int>(desc, CublasLtMatmulDescAttribute.TransA));
            Assert.Equal(0x7f00_0000_1200UL, DescAttribute<ulong>(desc, CublasLtMatmulDescAttribute.BiasPointer));
        }
        finally
        {
            CublasLt.cublasLtMatmulPreferenceDestroy(preference);
            CublasLt.cublasLtMatmulDescDestroy(desc);
        }
    }

    /// <summary>
    /// fc6's GEMM as the engine hands it over: the model's call on a device that records it (the row-major
    /// [N][9216]·[9216][4096] turned column-major by GemmBias), mapped by the CUDA backend to cuBLASLt's terms and built
    /// into a plan, whose descriptor and layouts are read back from the library: D = W'(4096×9216)·X'(9216×N), 4096
    /// rows of D, one bias per row, so per output feature.
    /// </summary>
    [SkippableFact]
    public void TheFullyConnectedGemmReachesCublasLtWithTheFeaturesAsTheRowsOfD()
    {
        TestNative.Require(NativeLibraryId.CublasLt);
        const int n = 5, k = 9216, f = 4096;
        using var device = new RecordingDevice { HasGemmBias = true };
        using DeviceBuffer<float> x = device.Allocate<float>((long)n * k), w = device.Allocate<float>((long)k * f);
        using DeviceBuffer<float> y = device.Allocate<float>((long)n * f), bias = device.Allocate<float>(f);
        device.DefaultStream.GemmBias(MatrixView.RowMajor(x, n, k), MatrixView.RowMajor(w, k, f), MatrixView.RowMajor(y, n, f), bias, relu: true);
        RecordedGemmBias recorded = Assert.Single(device.GemmBiases);
        Assert.Same(bias, recorded.Bias);

        CublasLtMatmulShape shape = CudaDevice.EpilogueShape(recorded.Call, recorded.Relu);
        Assert.Equal(new CublasLtMatmulShape(CublasOperation.None, CublasOperation.None, f, n, k, f, k, f,
            CudaDataType.R32F, CudaDataType.R32F, CublasComputeType.Compute32F, CublasLtEpilogue.ReluBias), shape);
        using CublasLtMatmulPlan plan = CublasLtMatmulPlan.Create(shape);
        plan.SetBias((ulong)bias.Handle);
        (IntPtr desc, IntPtr a, IntPtr b, IntPtr c) = plan.Handles;
        Assert.Equal((int)CublasComputeType.Compute32F, DescAttribute<int>(desc, CublasLtMatmulDescAttribute.ComputeType));
        Assert.Equal((int)CudaDataType.R32F, DescAttribute<int>(desc, CublasLtMatmulDescAttribute.ScaleType));
        Assert.Equal(0, DescAttribute<int>(desc, CublasLtMatmulDescAttribute.TransA));
        Assert.Equal(0, DescAttribute<int>(desc, CublasLtMatmulDescAttribute.TransB));
        Assert.Equal((uint)CublasLtEpilogue.ReluBias, DescAttribute<uint>(desc, CublasLtMatmulDescAttribute.Epilogue));
        Assert.Equal((ulong)bias.Handle, DescAttribute<ulong>(desc, CublasLtMatmulDescAttribute.BiasPointer));
        // A is the weights, stored [9216][4096] row-major = 4096×9216 column-major; B the activations; D is C.
        Assert.Equal(((ulong)f, (ulong)k, (long)f), Layout(a));
        Assert.Equal(((ulong)k, (ulong)n, (long)k), Layout(b));
        Assert.Equal(((ulong)f, (ulong)n, (long)f), Layout(c));
        Assert.Equal((uint)CudaDataType.R32F, LayoutAttribute<uint>(c, CublasLtMatrixLayoutAttribute.Type));
        Assert.Equal(0, LayoutAttribute<int>(c, CublasLtMatrixLayoutAttribute.Order)); // CUBLASLT_ORDER_COL
        Assert.False(plan.HasAlgorithm);
        Assert.Throws<InvalidOperationException>(() => plan.Run(IntPtr.Zero, 0, 0, 0, 0, 0, IntPtr.Zero));
    }

    [SkippableTheory]
    [InlineData(ElementFormat.Half, false, CudaDataType.R16F, CublasComputeType.Compute32F)]
    [InlineData(ElementFormat.BFloat16, false, CudaDataType.R16BF, CublasComputeType.Compute32F)]
    [InlineData(ElementFormat.Float32, true, CudaDataType.R32F, CublasComputeType.Compute32FFastTf32)]
    public void EachPrecisionMapsToItsTypesAndComputeType(ElementFormat format, bool tf32, CudaDataType type, CublasComputeType compute)
    {
        TestNative.Require(NativeLibraryId.CublasLt);
        using var device = new RecordingDevice();
        using DeviceBuffer a = device.Allocate<float>(64), b = device.Allocate<float>(64), c = device.Allocate<float>(64);
        // A transposed A (stored k×m) and a pitched C, at the shape a column-major caller would give.
        var call = new GemmCall(MatrixOp.Transpose, MatrixOp.None, 3, 2, 5, 1, 0, a, 0, 5, 0, b, 0, 5, 0, c, 0, 4, 0, 1, format,
            tf32 ? GemmMath.Tf32 : GemmMath.Default, format);
        CublasLtMatmulShape shape = CudaDevice.EpilogueShape(call, relu: false);
        Assert.Equal((type, type, compute, CublasLtEpilogue.Bias), (shape.ABType, shape.CType, shape.ComputeType, shape.Epilogue));
        using CublasLtMatmulPlan plan = CublasLtMatmulPlan.Create(shape);
        (IntPtr desc, IntPtr la, IntPtr lb, IntPtr lc) = plan.Handles;
        Assert.Equal(1, DescAttribute<int>(desc, CublasLtMatmulDescAttribute.TransA));
        Assert.Equal((int)compute, DescAttribute<int>(desc, CublasLtMatmulDescAttribute.ComputeType));
        Assert.Equal((5UL, 3UL, 5L), Layout(la)); // op(A) is 3×5, stored 5×3
        Assert.Equal((5UL, 2UL, 5L), Layout(lb));
        Assert.Equal((3UL, 2UL, 4L), Layout(lc));
        Assert.Equal((uint)type, LayoutAttribute<uint>(la, CublasLtMatrixLayoutAttribute.Type));
        Assert.Equal((uint)type, LayoutAttribute<uint>(lc, CublasLtMatrixLayoutAttribute.Type));
    }

    [Theory]
    [InlineData(0x7f0000000000UL, 256u)]
    [InlineData(0x7f0000000100UL + 12, 4u)]
    [InlineData(0x7f0000000100UL + 2, 2u)]
    [InlineData(0x7f0000000180UL, 128u)]
    [InlineData(0UL, 256u)]
    public void AnOperandsAlignmentIsItsLowestSetBitUpTo256(ulong address, uint alignment) =>
        Assert.Equal(alignment, CudaDevice.Alignment(address));

    [SkippableFact]
    public void FailuresAreNamedByCublasLtInOneLine()
    {
        TestNative.Require(NativeLibraryId.CublasLt);
        Assert.True(CublasLt.cublasLtGetVersion() >= 110000, $"cuBLASLt {CublasLt.cublasLtGetVersion()}");
        Assert.Equal("CUBLAS_STATUS_NOT_SUPPORTED", CublasLt.StatusName(CublasStatus.NotSupported));
        var e = Assert.Throws<CublasLtException>(() => CublasLtException.ThrowIfFailed(CublasStatus.NotSupported, "cublasLtMatmul(4096x5x9216)"));
        Assert.Equal("cublasLtMatmul(4096x5x9216) failed: CUBLAS_STATUS_NOT_SUPPORTED (15). cuBLASLt has no kernel for this GEMM and epilogue on this GPU: run the bias and ReLU as a kernel instead", e.Message);
        Assert.Equal(15, e.Status);
        // Without a GPU the handle cannot be created: the status says so, nothing crashes.
        if (TestNative.CudaUnavailableReason is not null)
            Assert.NotEqual(CublasStatus.Success, CublasLt.cublasLtCreate(out _));
    }

    private static T DescAttribute<T>(IntPtr desc, CublasLtMatmulDescAttribute attribute) where T : unmanaged
    {
        T value = default;
        CublasLtException.ThrowIfFailed(CublasLt.cublasLtMatmulDescGetAttribute(desc, attribute, &value, (nuint)sizeof(T), out nuint written));
        Assert.Equal((nuint)sizeof(T), written);
        return value;
    }

    private static T LayoutAttribute<T>(IntPtr layout, CublasLtMatrixLayoutAttribute attribute) where T : unmanaged
    {
        T value = default;
        CublasLtException.ThrowIfFailed(CublasLt.cublasLtMatrixLayoutGetAttribute(layout, attribute, &value, (nuint)sizeof(T), out nuint written));
        Assert.Equal((nuint)sizeof(T), written);
        return value;
    }

    private static (ulong Rows, ulong Columns, long Ld) Layout(IntPtr layout) => (LayoutAttribute<ulong>(layout, CublasLtMatrixLayoutAttribute.Rows),
        LayoutAttribute<ulong>(layout, CublasLtMatrixLayoutAttribute.Columns), LayoutAttribute<long>(layout, CublasLtMatrixLayoutAttribute.LeadingDimension));
}
