using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Network;

/// <summary>The engine's seeded test data (<see cref="SyntheticNetwork"/>), under short names.</summary>
internal static class NetworkData
{
    public static AlexNetArchitecture Narrow => SyntheticNetwork.Narrow;

    public static AlexNetWeights Weights(AlexNetArchitecture architecture, int seed) => SyntheticNetwork.Weights(architecture, seed);

    public static float[] Images(int count, int seed) => SyntheticNetwork.Images(count, seed);
}
