// Every DllImport of bridge_core (bridge_core/include/lpm_bridge.h) in one place. Each struct
// below names its C twin and has the same fields in the same order; CheckAbi() compares the
// marshalled sizes with lpm_struct_size() once, so a stale native library fails loudly instead
// of corrupting memory. Engine-agnostic: compiled by mono's mcs in CI as well as by Unity.
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;

namespace LpmNpc
{
    /// <summary>lpm_status. 0 = Ok, 1 = NoData (not an error), negative = errors.</summary>
    public enum LpmStatus
    {
        Ok = 0,
        NoData = 1,
        InvalidArgument = -1,
        NotFound = -2,
        Unavailable = -3,
        ResourceExhausted = -4,
        FailedPrecondition = -5,
        Unauthenticated = -6,
        DeadlineExceeded = -7,
        Rpc = -8,
        Ring = -9,
        RingBusy = -10,
        Closed = -11,
        BufferTooSmall = -12,
        Io = -13,
        Internal = -14,
        /// <summary>Not a bridge status: the loaded library does not match these bindings.</summary>
        AbiMismatch = -1000,
    }

    /// <summary>lpm_track.</summary>
    public enum LpmTrack { Speak = 1, Listen = 2 }

    /// <summary>lpm_delivery.</summary>
    public enum LpmDelivery { Auto = 0, Inline = 1, Shm = 2 }

    /// <summary>lpm_idle_policy.</summary>
    public enum LpmIdlePolicy { Default = 0, Animate = 1, AnimatePriority = 2 }

    /// <summary>lpm_event_kind.</summary>
    public enum LpmEventKind { None = 0, Frame = 1, PlaybackStarted = 2, PlaybackFinished = 3, Status = 4, StreamEnded = 5 }

    /// <summary>C twin: lpm_character_info.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LpmCharacterInfo
    {
        public int Created;
        public uint ReferenceCount;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 72)] public byte[] CharacterIdUtf8;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 72)] public byte[] VersionUtf8;

        public string CharacterId { get { return NativeBridge.FromUtf8(CharacterIdUtf8); } }
        public string Version { get { return NativeBridge.FromUtf8(VersionUtf8); } }
    }

    /// <summary>Filled by LpmNpcClient.Connect from LpmConnectSettings; the strings are UTF-8
    /// pointers owned by the caller (IntPtr.Zero = not set). C twin: lpm_connect_options.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LpmConnectOptions
    {
        public IntPtr Token;
        public uint TimeoutMs;
        public int Tls;
        public IntPtr TlsCaFile;
        public IntPtr TlsCaPem;
        public IntPtr TlsCertFile;
        public IntPtr TlsCertPem;
        public IntPtr TlsKeyFile;
        public IntPtr TlsKeyPem;
        public IntPtr TlsServerName;
    }

    /// <summary>C twin: lpm_session_options (the strings are UTF-8 pointers owned by the caller).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LpmSessionOptions
    {
        public IntPtr Character;
        public IntPtr Prompt;
        public ulong Seed;
        public uint Width;
        public uint Height;
        public uint Fps;
        public int Delivery;
        public int IdlePolicy;
        public uint ShmSlots;
    }

    /// <summary>C twin: lpm_session_info.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LpmSessionInfo
    {
        public long ClockOriginUnixNs;
        public long NextSample;
        public uint Width;
        public uint Height;
        public uint Fps;
        public uint FramesPerChunk;
        public uint SamplesPerChunk;
        public int Delivery;
        public uint ShmSlots;
        public uint Reserved;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 40)] public byte[] SessionIdUtf8;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 72)] public byte[] CharacterVersionUtf8;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 128)] public byte[] ShmNameUtf8;

        public string SessionId { get { return NativeBridge.FromUtf8(SessionIdUtf8); } }
        public string CharacterVersion { get { return NativeBridge.FromUtf8(CharacterVersionUtf8); } }
        public string ShmName { get { return NativeBridge.FromUtf8(ShmNameUtf8); } }
    }

    /// <summary>C twin: lpm_frame_info. Pixels are RGBA8, rows top to bottom.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LpmFrameInfo
    {
        public ulong Seq;
        public ulong ChunkIndex;
        public long PtsSamples;
        public double PtsMs;
        public long GeneratedUnixNs;
        public uint Width;
        public uint Height;
        public uint Stride;
        public uint Format;
        public int Speaking;
        public int Idle;
        public IntPtr Pixels;
    }

    /// <summary>C twin: lpm_event. Only the fields of its Kind are set.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LpmEvent
    {
        public int Kind;
        public int Interrupted;
        public ulong Segment;
        public long PtsSamples;
        public double PtsMs;
        public ulong Seq;
        public ulong ChunkIndex;
        public int Speaking;
        public int Idle;
        public double Rtf;
        public uint QueueDepth;
        public uint Sessions;
        public int Degraded;
        public int Draining;
        public ulong DroppedChunks;
        public ulong LateSamples;
        public ulong SpeakBufferedSamples;
        public ulong ListenBufferedSamples;
        public int Status;
        public int GrpcCode;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 256)] public byte[] TextUtf8;

        public LpmEventKind EventKind { get { return (LpmEventKind)Kind; } }
        public string Text { get { return NativeBridge.FromUtf8(TextUtf8); } }
    }

    /// <summary>C twin: lpm_close_info.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LpmCloseInfo
    {
        public ulong Frames;
        public ulong DroppedChunks;
        public ulong EventsDropped;
    }

    /// <summary>C twin: lpm_ring_info.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LpmRingInfo
    {
        public ulong FramesWritten;
        public ulong HeartbeatNs;
        public uint Width;
        public uint Height;
        public uint Stride;
        public uint Format;
        public uint SlotCount;
        public uint WriterPid;
        public int Closed;
        public uint Reserved;
    }

    /// <summary>C twin: lpm_event_callback, invoked on the session's reader thread; `ev` points to
    /// an lpm_event valid during the call (Marshal.PtrToStructure it). The wrappers here drain the
    /// event queue (lpm_session_poll_event) on the engine's thread instead.</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void LpmEventCallback(IntPtr ev, IntPtr userData);

    internal static class NativeBridge
    {
        // liblpm_bridge.so (Linux), lpm_bridge.dll (Windows), liblpm_bridge.dylib (macOS).
        internal const string Library = "lpm_bridge";
        internal const uint AbiVersion = 1;

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_bridge_abi_version")]
        internal static extern uint lpm_bridge_abi_version();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_struct_size")]
        internal static extern uint lpm_struct_size([MarshalAs(UnmanagedType.LPStr)] string structName);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_status_name")]
        internal static extern IntPtr lpm_status_name(int status);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_last_error")]
        internal static extern IntPtr lpm_last_error();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_connect")]
        internal static extern int lpm_connect(byte[] addressUtf8, byte[] tokenUtf8, uint timeoutMs, out IntPtr client);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_connect_options_init")]
        internal static extern void lpm_connect_options_init(out LpmConnectOptions options);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_connect_with_options")]
        internal static extern int lpm_connect_with_options(byte[] addressUtf8, ref LpmConnectOptions options, out IntPtr client);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_client_destroy")]
        internal static extern void lpm_client_destroy(IntPtr client);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_client_ping")]
        internal static extern int lpm_client_ping(IntPtr client, out uint characterCount);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_register_character_dir")]
        internal static extern int lpm_register_character_dir(IntPtr client, byte[] sheetDirUtf8, byte[] characterIdUtf8, out LpmCharacterInfo info);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_session_options_init")]
        internal static extern void lpm_session_options_init(out LpmSessionOptions options);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_session_open")]
        internal static extern int lpm_session_open(IntPtr client, ref LpmSessionOptions options, out IntPtr session);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_session_get_info")]
        internal static extern int lpm_session_get_info(IntPtr session, out LpmSessionInfo info);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_session_push_audio")]
        internal static extern int lpm_session_push_audio(IntPtr session, int track, IntPtr pcm, UIntPtr count, long samplePosition);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_session_push_audio_f32")]
        internal static extern int lpm_session_push_audio_f32(IntPtr session, int track, IntPtr samples, UIntPtr count, long samplePosition);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_session_segment_end")]
        internal static extern int lpm_session_segment_end(IntPtr session, int track);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_session_interrupt")]
        internal static extern int lpm_session_interrupt(IntPtr session);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_session_set_prompt")]
        internal static extern int lpm_session_set_prompt(IntPtr session, byte[] promptUtf8);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_session_next_frame")]
        internal static extern int lpm_session_next_frame(IntPtr session, ulong minSeq, IntPtr dst, UIntPtr dstBytes, out LpmFrameInfo frame);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_session_poll_frame")]
        internal static extern int lpm_session_poll_frame(IntPtr session, IntPtr dst, UIntPtr dstBytes, out LpmFrameInfo frame);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_session_set_event_callback")]
        internal static extern int lpm_session_set_event_callback(IntPtr session, LpmEventCallback callback, IntPtr userData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_session_poll_event")]
        internal static extern int lpm_session_poll_event(IntPtr session, out LpmEvent ev);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_session_close")]
        internal static extern int lpm_session_close(IntPtr session, out LpmCloseInfo info);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_ring_open")]
        internal static extern int lpm_ring_open(byte[] nameOrPathUtf8, out IntPtr ring);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_ring_close")]
        internal static extern void lpm_ring_close(IntPtr ring);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_ring_get_info")]
        internal static extern int lpm_ring_get_info(IntPtr ring, out LpmRingInfo info);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_ring_read_slot")]
        internal static extern int lpm_ring_read_slot(IntPtr ring, uint slot, IntPtr dst, UIntPtr dstBytes, out LpmFrameInfo frame);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "lpm_ring_read_latest")]
        internal static extern int lpm_ring_read_latest(IntPtr ring, IntPtr dst, UIntPtr dstBytes, out LpmFrameInfo frame);

        // ---- helpers ---------------------------------------------------------------------------

        static readonly object AbiLock = new object();
        static bool abiChecked;

        /// <summary>Once per process: the loaded library's ABI version and struct sizes match these twins.</summary>
        internal static void CheckAbi()
        {
            lock (AbiLock)
            {
                if (abiChecked) return;
                uint version = lpm_bridge_abi_version();
                if (version != AbiVersion)
                    throw new LpmNpcException(LpmStatus.AbiMismatch, "lpm_bridge ABI version " + version + ", these bindings need " + AbiVersion);
                CheckSize("lpm_character_info", typeof(LpmCharacterInfo));
                CheckSize("lpm_connect_options", typeof(LpmConnectOptions));
                CheckSize("lpm_session_options", typeof(LpmSessionOptions));
                CheckSize("lpm_session_info", typeof(LpmSessionInfo));
                CheckSize("lpm_frame_info", typeof(LpmFrameInfo));
                CheckSize("lpm_event", typeof(LpmEvent));
                CheckSize("lpm_close_info", typeof(LpmCloseInfo));
                CheckSize("lpm_ring_info", typeof(LpmRingInfo));
                abiChecked = true;
            }
        }

        static void CheckSize(string cName, Type twin)
        {
            uint native = lpm_struct_size(cName);
            int managed = Marshal.SizeOf(twin);
            if (native != (uint)managed)
                throw new LpmNpcException(LpmStatus.AbiMismatch,
                    cName + " is " + native + " bytes in the loaded lpm_bridge, its twin " + twin.Name + " marshals to " + managed);
        }

        /// <summary>NUL-terminated UTF-8 (NULL for a null string).</summary>
        internal static byte[] ToUtf8(string s)
        {
            if (s == null) return null;
            byte[] bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
            Encoding.UTF8.GetBytes(s, 0, s.Length, bytes, 0);
            return bytes;
        }

        /// <summary>A pinned NUL-terminated UTF-8 copy of `s` for a string field of an interop struct
        /// (IntPtr.Zero for null or ""); the caller frees every handle in `pins` after the call.</summary>
        internal static IntPtr PinUtf8(string s, List<GCHandle> pins)
        {
            if (string.IsNullOrEmpty(s)) return IntPtr.Zero;
            GCHandle pin = GCHandle.Alloc(ToUtf8(s), GCHandleType.Pinned);
            pins.Add(pin);
            return pin.AddrOfPinnedObject();
        }

        internal static string FromUtf8(byte[] bytes)
        {
            if (bytes == null) return "";
            int n = Array.IndexOf(bytes, (byte)0);
            return Encoding.UTF8.GetString(bytes, 0, n < 0 ? bytes.Length : n);
        }

        internal static string FromUtf8(IntPtr p)
        {
            if (p == IntPtr.Zero) return "";
            int n = 0;
            while (Marshal.ReadByte(p, n) != 0) n++;
            byte[] bytes = new byte[n];
            Marshal.Copy(p, bytes, 0, n);
            return Encoding.UTF8.GetString(bytes);
        }

        internal static string LastError() { return FromUtf8(lpm_last_error()); }

        internal static string StatusName(int status) { return FromUtf8(lpm_status_name(status)); }

        /// <summary>Throws LpmNpcException for a negative status (with this thread's last error).</summary>
        internal static int Check(int status, string call)
        {
            if (status < 0)
                throw new LpmNpcException((LpmStatus)status, call + ": " + StatusName(status) + ": " + LastError());
            return status;
        }
    }
}
