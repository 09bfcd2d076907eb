using AlexNet.Cuda.Devices;

namespace AlexNet.Cuda.Tests.Devices;

public class KernelArgumentsTests
{
    [Fact]
    public void ArgumentsArePackedAtTheirNaturalAlignment()
    {
        var args = new KernelArguments();
        args.Add(1);          // int: 0..4
        args.Add(2L);         // long: aligned to 8
        args.Add(3f);         // float: 16..20
        args.Add((nint)0x1234); // a pointer: aligned to 8
        Assert.Equal(4, args.Count);
        Assert.Equal([0, 8, 16, 24], Enumerable.Range(0, 4).Select(args.OffsetOf));
        Assert.Equal([4, 8, 4, 8], Enumerable.Range(0, 4).Select(args.SizeOf));
    }

    [Fact]
    public void TooManyArgumentsAreRefused()
    {
        var args = new KernelArguments();
        for (int i = 0; i < KernelArguments.MaxArguments; i++) args.Add(i);
        Assert.Throws<ArgumentException>(() => args.Add(0));
    }
}
