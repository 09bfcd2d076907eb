using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Torch;
using AlexNet.Cuda.Weights;
using static TorchSharp.torch;

namespace AlexNet.Cuda.Benchmarks;

/// <summary>
/// What <see cref="OperationBenchmarks"/> runs on at one batch size: full-size synthetic weights (seeded), the
/// engine's <see cref="AlexNetModel"/> on the OpenCL device and <see cref="TorchSharpAlexNet"/> built from them,
/// and for each operation its input with the same values on both sides (the engine's <c>[C][N][H][W]</c> on the
/// device, TorchSharp's channels-last tensors) and the engine's output buffer. Everything is made here, so
/// nothing is allocated in the timed calls but what each side allocates itself.
/// </summary>
internal sealed class OperationFixture : IDisposable
{
    private const int WeightSeed = 1;

    private readonly SelectedDevice _selected;
    private readonly List<IDisposable> _owned = [];

    public OperationFixture(int batch)
    {
        Batch = batch;
        AlexNetWeights weights = SyntheticNetwork.Weights(AlexNetArchitecture.Default, WeightSeed);
        _selected = DeviceSelector.Open(DeviceChoice.OpenCl);
        try
        {
            ComputeDevice device = _selected.Device;
            Model = Own(AlexNetModel.Create(device, weights, new AlexNetOptions { MaxBatch = batch }));
            Torch = Own(TorchSharpAlexNet.Create(weights, batch));
            Stream = Model.Stream;
            Kernels = Model.Kernels;
            Lrn = Model.Options.Lrn;
            NetworkPlan plan = Model.Plan;
            (Norm1Plan, Norm2Plan, Conv5Plan) = (plan.Activation("norm1"), plan.Activation("norm2"), plan.Activation("conv5"));
            int n = batch, seed = 100;

            for (int i = 0; i < 5; i++)
            {
                ConvolutionPlan c = plan.Convolutions[i];
                (ConvInputs[i], TorchConvInputs[i]) = Activation(c.InputChannels, c.InputSize, seed++);
                ConvOutputs[i] = Own(device.Allocate<float>((long)c.OutputChannels * n * c.OutputPixels));
            }
            // Each operation's input has the shape of the activation before it in the network.
            (Norm1Input, TorchNorm1Input) = Activation(plan.Activation("conv1"), seed++);
            Norm1Output = Allocate(Norm1Plan);
            (Norm2Input, TorchNorm2Input) = Activation(plan.Activation("conv2"), seed++);
            Norm2Output = Allocate(Norm2Plan);
            (Pool1Input, TorchPool1Input) = Activation(Norm1Plan, seed++);
            Pool1Output = Allocate(plan.Activation("pool1"));
            (Pool2Input, TorchPool2Input) = Activation(Norm2Plan, seed++);
            Pool2Output = Allocate(plan.Activation("pool2"));
            (Pool5Input, TorchPool5Input) = Activation(Conv5Plan, seed++);
            Pool5Output = Allocate(plan.Activation("pool5"));

            FcSizes = [(int)plan.Activation("pool5").ElementsPerImage, .. plan.FullyConnected];
            for (int i = 0; i < 3; i++)
            {
                float[] x = Values((long)n * FcSizes[i], seed++);
                FcInputs[i] = Own(device.Upload<float>(x));
                TorchFcInputs[i] = Own(tensor(x, [n, FcSizes[i]]));
                FcOutputs[i] = Own(device.Allocate<float>((long)n * FcSizes[i + 1]));
            }
            int classes = Model.NumClasses;
            float[] logits = Values((long)n * classes, seed++, scale: 20);
            Logits = Own(device.Upload<float>(logits));
            TorchLogits = Own(tensor(logits, [n, classes]));
            Probabilities = Own(device.Allocate<float>((long)n * classes));
            // The engine's softmax adds fc8's bias as it goes (the forward pass has no separate bias step for
            // fc8); a bias of zeros keeps the logits the same from one call to the next.
            ZeroBias = Own(device.Upload<float>(new float[classes]));

            Images = SyntheticNetwork.Images(n, seed);
            EngineResult = new float[n * classes];
            TorchResult = new float[n * classes];
            device.Synchronize();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int Batch { get; }
    public AlexNetModel Model { get; } = null!;
    public TorchSharpAlexNet Torch { get; } = null!;
    public ComputeStream Stream { get; } = null!;
    public NetworkKernels Kernels { get; } = null!;
    public LrnParameters Lrn { get; }
    public ActivationPlan Norm1Plan { get; } = null!;
    public ActivationPlan Norm2Plan { get; } = null!;
    public ActivationPlan Conv5Plan { get; } = null!;

    public DeviceBuffer<float>[] ConvInputs { get; } = new DeviceBuffer<float>[5];
    public DeviceBuffer<float>[] ConvOutputs { get; } = new DeviceBuffer<float>[5];
    public Tensor[] TorchConvInputs { get; } = new Tensor[5];
    public DeviceBuffer<float> Norm1Input { get; } = null!;
    public DeviceBuffer<float> Norm1Output { get; } = null!;
    public DeviceBuffer<float> Norm2Input { get; } = null!;
    public DeviceBuffer<float> Norm2Output { get; } = null!;
    public Tensor TorchNorm1Input { get; } = null!;
    public Tensor TorchNorm2Input { get; } = null!;
    public DeviceBuffer<float> Pool1Input { get; } = null!;
    public DeviceBuffer<float> Pool1Output { get; } = null!;
    public DeviceBuffer<float> Pool2Input { get; } = null!;
    public DeviceBuffer<float> Pool2Output { get; } = null!;
    public DeviceBuffer<float> Pool5Input { get; } = null!;
    public DeviceBuffer<float> Pool5Output { get; } = null!;
    public Tensor TorchPool1Input { get; } = null!;
    public Tensor TorchPool2Input { get; } = null!;
    public Tensor TorchPool5Input { get; } = null!;
    public int[] FcSizes { get; } = null!;
    public DeviceBuffer<float>[] FcInputs { get; } = new DeviceBuffer<float>[3];
    public DeviceBuffer<float>[] FcOutputs { get; } = new DeviceBuffer<float>[3];
    public Tensor[] TorchFcInputs { get; } = new Tensor[3];
    public DeviceBuffer<float> Logits { get; } = null!;
    public DeviceBuffer<float> Probabilities { get; } = null!;
    public DeviceBuffer<float> ZeroBias { get; } = null!;
    public Tensor TorchLogits { get; } = null!;
    public float[] Images { get; } = null!;
    public float[] EngineResult { get; } = null!;
    public float[] TorchResult { get; } = null!;

    private T Own<T>(T resource) where T : IDisposable
    {
        _owned.Add(resource);
        return resource;
    }

    private DeviceBuffer<float> Allocate(ActivationPlan plan) => Own(Model.Device.Allocate<float>(plan.ElementsPerImage * Batch));

    private (DeviceBuffer<float>, Tensor) Activation(ActivationPlan plan, int seed) => Activation(plan.Channels, plan.Height, seed);

    /// <summary>Seeded values of an activation [N, C, size, size]: uploaded as the engine keeps it, [C][N][H][W],
    /// and as a TorchSharp tensor in the peer's layout.</summary>
    private (DeviceBuffer<float>, Tensor) Activation(int channels, int size, int seed)
    {
        int n = Batch, pixels = size * size;
        float[] nchw = Values((long)n * channels * pixels, seed);
        var cnhw = new float[nchw.Length];
        for (int image = 0; image < n; image++)
        for (int c = 0; c < channels; c++)
            Array.Copy(nchw, ((long)image * channels + c) * pixels, cnhw, ((long)c * n + image) * pixels, pixels);
        return (Own(Model.Device.Upload<float>(cnhw)), Own(Torch.Activation(nchw, n, channels, size, size)));
    }

    /// <summary>Uniform in ±scale: activations of the size the synthetic network's layers produce.</summary>
    private static float[] Values(long count, int seed, float scale = 4)
    {
        var random = new Random(seed);
        var x = new float[count];
        for (long i = 0; i < count; i++) x[i] = (float)((random.NextDouble() * 2 - 1) * scale);
        return x;
    }

    /// <summary>Buffers and tensors first, then the model and the peer, then the device.</summary>
    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _owned.Clear();
        _selected.Dispose();
    }
}
