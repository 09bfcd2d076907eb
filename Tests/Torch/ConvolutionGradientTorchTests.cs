using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AlexNet.Cuda.Tests.Torch;

/// <summary>
/// One convolution's weight and input gradients from <see cref="ConvolutionBackward.ConvolutionGradients"/> on OpenCL
/// against TorchSharp's autograd (float32, NCHW, OIHW weights: an implementation that shares nothing with the
/// engine's lowering and GEMMs): every element within <see cref="Tolerance"/> of the largest magnitude of Torch's
/// gradient. Data in [-1, 1], so no outlier widens the bound for the rest.
/// </summary>
[Collection(OpenClCollection.Name)]
public class ConvolutionGradientTorchTests(OpenClFixture fixture)
{
    /// <summary>Two float32 computations of sums of up to a few thousand terms, in different orders: each is within
    /// about 1e-6 of the largest magnitude; a term on the wrong tap, group or image misses by far more.</summary>
    private const double Tolerance = 1e-5;

    [SkippableTheory]
    // conv2's form scaled down: 5x5, SAME padding 2, two groups, batch 2 in chunks of 1.
    [InlineData(16, 24, 2, 5, 1, 2, 15, 2, 1)]
    // conv4/conv5's form: 3x3, padding 1, two groups, 13x13, batch 3 with a workspace of two images (chunk 0: as it holds).
    [InlineData(32, 32, 2, 3, 1, 1, 13, 3, 0)]
    // conv1's form: 11x11 at stride 4, no padding, one group.
    [InlineData(3, 16, 1, 11, 4, 0, 39, 2, 2)]
    public void ConvolutionGradientsMatchTorchAutograd(int cin, int cout, int groups, int kernel, int stride, int pad, int size, int batch, int chunk)
    {
        TorchReference.Require();
        ComputeDevice device = fixture.Device;
        int outSize = (size + 2 * pad - kernel) / stride + 1;
        var layer = new ConvolutionPlan("conv", cin, cout, groups, kernel, stride, pad, size, outSize, chunk);
        float[] input = Data(cin * batch * size * size, seed: 41);        // [Cin][N][H][W]
        float[] weights = Data(cout * layer.GroupK, seed: 43);            // [Cout][Cin/groups][k][k], the device layout
        float[] gradOutput = Data(cout * batch * outSize * outSize, seed: 47); // [Cout][N][Ho][Wo]

        // The engine.
        using var backward = new ConvolutionBackward(device);
        using DeviceBuffer<float> dInput = device.Upload<float>(input);
        using DeviceBuffer<float> dWeights = device.Upload<float>(weights);
        using DeviceBuffer<float> dGradOutput = device.Upload<float>(gradOutput);
        using DeviceBuffer<float> dGradWeights = device.Allocate<float>(weights.Length);
        using DeviceBuffer<float> dGradInput = device.Allocate<float>(input.Length);
        using DeviceBuffer<float> workspace = device.Allocate<float>(Math.Max(chunk, 2) * layer.LoweredPerImage);
        backward.ConvolutionGradients(device.DefaultStream, layer, batch, dInput, dWeights, dGradOutput, dGradWeights, dGradInput, workspace);
        float[] engineWeights = device.Download(dGradWeights), engineInput = device.Download(dGradInput);

        // Torch: loss = Σ gradOutput·conv2d(x, w), whose gradients are dW and dX.
        float[] torchWeights, torchInput;
        using (var scope = NewDisposeScope())
        {
            Tensor x = tensor(input, [cin, batch, size, size]).permute(1, 0, 2, 3).contiguous().requires_grad_();
            Tensor w = tensor(weights, [cout, cin / groups, kernel, kernel]).requires_grad_();
            Tensor g = tensor(gradOutput, [cout, batch, outSize, outSize]).permute(1, 0, 2, 3);
            Tensor y = F.conv2d(x, w, strides: [stride, stride], padding: [pad, pad], groups: groups);
            Assert.Equal(new long[] { batch, cout, outSize, outSize }, y.shape);
            (y * g).sum().backward();
            torchWeights = w.grad!.contiguous().data<float>().ToArray();
            torchInput = x.grad!.permute(1, 0, 2, 3).contiguous().data<float>().ToArray();
        }

        AssertClose(engineWeights, torchWeights, "dW");
        AssertClose(engineInput, torchInput, "dX");
    }

    private static void AssertClose(float[] engine, float[] torch, string what)
    {
        Assert.Equal(torch.Length, engine.Length);
        double largest = torch.Max(v => Math.Abs((double)v));
        Assert.True(largest > 0, $"{what}: Torch's gradient is all 0");
        int worst = 0;
        double error = 0;
        for (int i = 0; i < torch.Length; i++)
        {
            double e = Math.Abs((double)engine[i] - torch[i]);
            if (double.IsNaN(e) || e > error) (worst, error) = (i, double.IsNaN(e) ? double.PositiveInfinity : e);
        }
        Assert.True(error <= Tolerance * largest,
            $"{what}: element {worst} is {engine[worst]:G9} in the engine, {torch[worst]:G9} in Torch; |error| {error:G3} > {Tolerance}·{largest:G3}");
    }

    /// <summary><see cref="KernelChecks.TestData"/> clamped to [-1, 1].</summary>
    private static float[] Data(int length, int seed)
    {
        float[] data = KernelChecks.TestData(length, seed);
        for (int i = 0; i < length; i++) data[i] = Math.Clamp(data[i], -1f, 1f);
        return data;
    }
}
