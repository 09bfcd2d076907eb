using System.Runtime.InteropServices;

namespace AlexNet.Cli;

/// <summary>
/// Ctrl+C (SIGINT) and SIGTERM as a request to stop, for a command that runs long. From <see cref="Listen"/>
/// until <see cref="Dispose"/>, the first such signal no longer ends the process: it sets
/// <see cref="IsRequested"/> and cancels <see cref="Token"/>, and the command, which polls between units of
/// work (a pass, a check, a batch), writes what it has and stops with <see cref="ThrowIfRequested"/>;
/// <see cref="Program"/> reports that as one line, <c>alexnet: interrupted by SIGINT during …</c>, and exit
/// status 130. A second signal ends the process at once, as if nothing listened. A command that reports its
/// own way (classify writes the batches in flight) polls <see cref="IsRequested"/>, prints its line and returns
/// <see cref="ExitCode"/>.
/// </summary>
internal sealed class Interruption : IDisposable
{
    /// <summary>128 + SIGINT, what a shell reports for a program Ctrl+C ended; also after SIGTERM, so that one
    /// status means "interrupted".</summary>
    public const int ExitCode = 130;

    private readonly CancellationTokenSource _source = new();
    private readonly PosixSignalRegistration[] _registrations;
    private int _signal; // a PosixSignal once requested; 0 before (the enum's values are negative)

    private Interruption(PosixSignal[] signals)
    {
        _registrations = new PosixSignalRegistration[signals.Length];
        try
        {
            for (int i = 0; i < signals.Length; i++) _registrations[i] = PosixSignalRegistration.Create(signals[i], OnSignal);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Turns SIGINT and SIGTERM into requests to stop until the instance is disposed.</summary>
    public static Interruption Listen() => new([PosixSignal.SIGINT, PosixSignal.SIGTERM]);

    /// <summary>An instance no signal reaches, stopped only by <see cref="Request"/> (for tests).</summary>
    internal static Interruption Unregistered() => new([]);

    /// <summary>Cancelled when a stop is requested, for work that takes a token.</summary>
    public CancellationToken Token => _source.Token;

    public bool IsRequested => Volatile.Read(ref _signal) != 0;

    /// <summary>"SIGINT" or "SIGTERM" once requested; null before.</summary>
    public string? SignalName => IsRequested ? Name((PosixSignal)Volatile.Read(ref _signal)) : null;

    /// <summary>Requests a stop as <paramref name="signal"/> would; false when one was requested already.</summary>
    public bool Request(PosixSignal signal)
    {
        if (Interlocked.CompareExchange(ref _signal, (int)signal, 0) != 0) return false;
        _source.Cancel();
        return true;
    }

    /// <summary>Throws <see cref="CommandInterruptedException"/> when a stop was requested;
    /// <paramref name="where"/> ends its message: "during batch 8, pass 3 of 20", "after 12 of 63 checks".</summary>
    public void ThrowIfRequested(string where)
    {
        if (IsRequested) throw new CommandInterruptedException(SignalName!, where);
    }

    /// <summary>As <see cref="ThrowIfRequested(string)"/>, building the text only when it is needed.</summary>
    public void ThrowIfRequested(Func<string> where)
    {
        if (IsRequested) throw new CommandInterruptedException(SignalName!, where());
    }

    private void OnSignal(PosixSignalContext context)
    {
        // Cancel = true keeps the process alive for the command to stop; the second signal is left to its
        // default action, which ends the process.
        if (Request(context.Signal)) context.Cancel = true;
    }

    private static string Name(PosixSignal signal) => signal switch
    {
        PosixSignal.SIGINT => "SIGINT",
        PosixSignal.SIGTERM => "SIGTERM",
        _ => $"signal {(int)signal}",
    };

    public void Dispose()
    {
        // The token source is left to the collector: without a timer it holds nothing to release, and a
        // signal handler still running on another thread may yet cancel it.
        foreach (PosixSignalRegistration? registration in _registrations) registration?.Dispose();
    }
}

/// <summary>A command stopped at a request of <see cref="Interruption"/>; <see cref="Program"/> prints its
/// message as <c>alexnet: interrupted by SIGINT during …</c> and exits with <see cref="Interruption.ExitCode"/>.</summary>
internal sealed class CommandInterruptedException(string signal, string where)
    : OperationCanceledException($"interrupted by {signal} {where}")
{
    public string Signal { get; } = signal;
}
