namespace AlexNet.Cuda;

/// <summary>
/// Base of every error the engine reports to a user: its <see cref="Exception.Message"/> is one line that
/// names the problem and, where there is one, what to do about it. The command-line program prints that
/// line alone (the stack trace only with <c>--verbose</c>); anything that is not an
/// <see cref="AlexNetException"/> is treated as a bug.
/// </summary>
public class AlexNetException : Exception
{
    public AlexNetException(string message) : base(message) { }

    public AlexNetException(string message, Exception? inner) : base(message, inner) { }
}
