namespace AlexNet.Cuda.Tests;

public class CliTests
{
    [Fact]
    public void UnknownCommandIsOneLineError()
    {
        var e = Assert.Throws<AlexNetException>(() => AlexNet.Cli.Program.Run(["frobnicate"], TextWriter.Null));
        Assert.Contains("unknown command 'frobnicate'", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
