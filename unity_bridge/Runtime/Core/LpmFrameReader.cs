// Frames of a session into one persistent managed buffer. Engine-agnostic.
using System;
using System.Runtime.InteropServices;

namespace LpmNpc
{
    /// <summary>
    /// Reads a session's frames into <see cref="Pixels"/> (RGBA8, rows top to bottom), allocated
    /// once. ReadNext() follows every frame in order (recording, tests); Present() asks for the
    /// frame to show now (the native session paces frames at 24 fps). Use it from one thread.
    /// For a texture, pass its own memory to LpmNpcSession.TryPollFrame instead and skip this copy.
    /// </summary>
    public sealed class LpmFrameReader
    {
        readonly LpmNpcSession session;

        public byte[] Pixels { get; private set; }
        public LpmFrameInfo Current { get; private set; }
        /// <summary>Frames copied so far (ReadNext and Present together).</summary>
        public long FramesRead { get; private set; }
        ulong nextSeq;

        public LpmFrameReader(LpmNpcSession session)
        {
            if (session == null) throw new ArgumentNullException("session");
            this.session = session;
            Pixels = new byte[session.FrameBytes];
        }

        /// <summary>The next frame in seq order (skipping any the ring overwrote); false if none yet.</summary>
        public bool ReadNext()
        {
            LpmFrameInfo frame;
            if (!session.TryNextFrame(nextSeq, Pixels, out frame)) return false;
            Accept(frame);
            nextSeq = frame.Seq + 1;
            return true;
        }

        /// <summary>The frame to show now; false when the one in Pixels is still the right one.</summary>
        public bool Present()
        {
            LpmFrameInfo frame;
            if (!session.TryPollFrame(Pixels, out frame)) return false;
            Accept(frame);
            return true;
        }

        void Accept(LpmFrameInfo frame)
        {
            frame.Pixels = IntPtr.Zero;  // the native pointer named our pinned array, unpinned by now
            Current = frame;
            FramesRead++;
        }
    }

    /// <summary>A read-only view of a shared-memory frame ring (lpm_ring), for tools and
    /// diagnostics; sessions read their ring themselves.</summary>
    public sealed class LpmRingReader : IDisposable
    {
        IntPtr handle;

        public LpmRingReader(string nameOrPath)
        {
            NativeBridge.CheckAbi();
            NativeBridge.Check(NativeBridge.lpm_ring_open(NativeBridge.ToUtf8(nameOrPath), out handle), "lpm_ring_open");
        }

        public LpmRingInfo Info
        {
            get
            {
                LpmRingInfo info;
                NativeBridge.Check(NativeBridge.lpm_ring_get_info(Handle, out info), "lpm_ring_get_info");
                return info;
            }
        }

        /// <summary>The newest frame into dst (Width * Height * 4 bytes); false if none was written.</summary>
        public bool TryReadLatest(byte[] dst, out LpmFrameInfo frame)
        {
            if (dst == null) throw new ArgumentNullException("dst");
            GCHandle pin = GCHandle.Alloc(dst, GCHandleType.Pinned);
            try
            {
                int status = NativeBridge.Check(NativeBridge.lpm_ring_read_latest(Handle, pin.AddrOfPinnedObject(), (UIntPtr)(uint)dst.Length, out frame), "lpm_ring_read_latest");
                frame.Pixels = IntPtr.Zero;
                return status == (int)LpmStatus.Ok;
            }
            finally { pin.Free(); }
        }

        IntPtr Handle
        {
            get
            {
                if (handle == IntPtr.Zero) throw new ObjectDisposedException("LpmRingReader");
                return handle;
            }
        }

        public void Dispose()
        {
            if (handle != IntPtr.Zero)
            {
                NativeBridge.lpm_ring_close(handle);
                handle = IntPtr.Zero;
            }
        }
    }
}
