using System;

namespace LpmNpc
{
    /// <summary>A failed bridge call: the lpm_status and the bridge's last-error message
    /// (which names the field and allowed range, or the daemon's gRPC status).</summary>
    public sealed class LpmNpcException : Exception
    {
        public LpmStatus Status { get; private set; }

        public LpmNpcException(LpmStatus status, string message) : base(message)
        {
            Status = status;
        }
    }
}
