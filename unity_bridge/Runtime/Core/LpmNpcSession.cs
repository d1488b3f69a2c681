// One on-screen character's session (lpm_session). Engine-agnostic.
using System;
using System.Runtime.InteropServices;

namespace LpmNpc
{
    /// <summary>
    /// A daemon session with its Converse stream. The native side owns the stream threads:
    /// PushAudio / EndSegment / Interrupt / SetPrompt only queue and may be called from any thread;
    /// frames and events are read on the caller's thread (the engine's main thread), so no native
    /// callback ever enters managed code. Dispose (or Close) releases the native session.
    /// </summary>
    public sealed class LpmNpcSession : IDisposable
    {
        IntPtr handle;
        readonly object closeLock = new object();

        public LpmSessionInfo Info { get; private set; }
        /// <summary>Bytes of one RGBA8 frame: Width * Height * 4.</summary>
        public int FrameBytes { get; private set; }

        LpmNpcSession(IntPtr handle)
        {
            this.handle = handle;
            LpmSessionInfo info;
            NativeBridge.Check(NativeBridge.lpm_session_get_info(handle, out info), "lpm_session_get_info");
            Info = info;
            FrameBytes = checked((int)(info.Width * info.Height * 4));
        }

        internal static LpmNpcSession Open(LpmNpcClient client, LpmSessionSettings settings)
        {
            if (string.IsNullOrEmpty(settings.Character))
                throw new LpmNpcException(LpmStatus.InvalidArgument, "Character is empty: give \"ID\" or \"ID@VERSION\"");
            LpmSessionOptions options;
            NativeBridge.lpm_session_options_init(out options);
            GCHandle character = GCHandle.Alloc(NativeBridge.ToUtf8(settings.Character), GCHandleType.Pinned);
            GCHandle prompt = GCHandle.Alloc(NativeBridge.ToUtf8(settings.Prompt ?? ""), GCHandleType.Pinned);
            try
            {
                options.Character = character.AddrOfPinnedObject();
                options.Prompt = settings.Prompt == null ? IntPtr.Zero : prompt.AddrOfPinnedObject();
                options.Seed = settings.Seed;
                options.Width = settings.Size;
                options.Height = settings.Size;
                options.Delivery = (int)settings.Delivery;
                options.IdlePolicy = (int)settings.IdlePolicy;
                options.ShmSlots = settings.ShmSlots;
                IntPtr session;
                NativeBridge.Check(NativeBridge.lpm_session_open(client.Handle, ref options, out session), "lpm_session_open");
                return new LpmNpcSession(session);
            }
            finally
            {
                character.Free();
                prompt.Free();
            }
        }

        IntPtr Handle
        {
            get
            {
                IntPtr h = handle;
                if (h == IntPtr.Zero) throw new ObjectDisposedException("LpmNpcSession");
                return h;
            }
        }

        /// <summary>Queues PCM16 samples (16 kHz mono). samplePosition &lt; 0 follows the previous audio.</summary>
        public void PushAudio(LpmTrack track, short[] pcm, int offset, int count, long samplePosition = -1)
        {
            CheckRange(pcm, offset, count);
            if (count == 0) return;
            GCHandle pin = GCHandle.Alloc(pcm, GCHandleType.Pinned);
            try
            {
                IntPtr at = Marshal.UnsafeAddrOfPinnedArrayElement(pcm, offset);
                NativeBridge.Check(NativeBridge.lpm_session_push_audio(Handle, (int)track, at, (UIntPtr)(uint)count, samplePosition), "lpm_session_push_audio");
            }
            finally { pin.Free(); }
        }

        /// <summary>Queues float samples in [-1, 1] (16 kHz mono); NaN/Inf are refused.</summary>
        public void PushAudio(LpmTrack track, float[] samples, int offset, int count, long samplePosition = -1)
        {
            CheckRange(samples, offset, count);
            if (count == 0) return;
            GCHandle pin = GCHandle.Alloc(samples, GCHandleType.Pinned);
            try
            {
                IntPtr at = Marshal.UnsafeAddrOfPinnedArrayElement(samples, offset);
                NativeBridge.Check(NativeBridge.lpm_session_push_audio_f32(Handle, (int)track, at, (UIntPtr)(uint)count, samplePosition), "lpm_session_push_audio_f32");
            }
            finally { pin.Free(); }
        }

        /// <summary>The current utterance on the track is complete.</summary>
        public void EndSegment(LpmTrack track)
        {
            NativeBridge.Check(NativeBridge.lpm_session_segment_end(Handle, (int)track), "lpm_session_segment_end");
        }

        /// <summary>Barge-in: always answered by a PlaybackFinished event with Interrupted = 1.</summary>
        public void Interrupt()
        {
            NativeBridge.Check(NativeBridge.lpm_session_interrupt(Handle), "lpm_session_interrupt");
        }

        /// <summary>Changes the prompt from the next chunk on.</summary>
        public void SetPrompt(string prompt)
        {
            NativeBridge.Check(NativeBridge.lpm_session_set_prompt(Handle, NativeBridge.ToUtf8(prompt ?? "")), "lpm_session_set_prompt");
        }

        /// <summary>In order: copies the oldest available frame with Seq &gt;= minSeq into dst
        /// (FrameBytes bytes); false when there is none yet.</summary>
        public bool TryNextFrame(ulong minSeq, IntPtr dst, int dstBytes, out LpmFrameInfo frame)
        {
            return NativeBridge.Check(NativeBridge.lpm_session_next_frame(Handle, minSeq, dst, (UIntPtr)(uint)dstBytes, out frame), "lpm_session_next_frame") == (int)LpmStatus.Ok;
        }

        public bool TryNextFrame(ulong minSeq, byte[] dst, out LpmFrameInfo frame)
        {
            CheckFrameBuffer(dst);
            GCHandle pin = GCHandle.Alloc(dst, GCHandleType.Pinned);
            try { return TryNextFrame(minSeq, pin.AddrOfPinnedObject(), dst.Length, out frame); }
            finally { pin.Free(); }
        }

        /// <summary>Presentation: copies the frame to show now (paced at 24 fps by the native
        /// session) into dst; false when it has not changed since the last call.</summary>
        public bool TryPollFrame(IntPtr dst, int dstBytes, out LpmFrameInfo frame)
        {
            return NativeBridge.Check(NativeBridge.lpm_session_poll_frame(Handle, dst, (UIntPtr)(uint)dstBytes, out frame), "lpm_session_poll_frame") == (int)LpmStatus.Ok;
        }

        public bool TryPollFrame(byte[] dst, out LpmFrameInfo frame)
        {
            CheckFrameBuffer(dst);
            GCHandle pin = GCHandle.Alloc(dst, GCHandleType.Pinned);
            try { return TryPollFrame(pin.AddrOfPinnedObject(), dst.Length, out frame); }
            finally { pin.Free(); }
        }

        /// <summary>The oldest queued event (playback started/finished, status, frame, stream ended).</summary>
        public bool TryPollEvent(out LpmEvent ev)
        {
            return NativeBridge.Check(NativeBridge.lpm_session_poll_event(Handle, out ev), "lpm_session_poll_event") == (int)LpmStatus.Ok;
        }

        /// <summary>CloseSession, join the native threads, unmap the ring. Throws on a daemon error
        /// (the native session is released whatever happens).</summary>
        public LpmCloseInfo Close()
        {
            IntPtr h;
            lock (closeLock)
            {
                h = handle;
                handle = IntPtr.Zero;
            }
            if (h == IntPtr.Zero) throw new ObjectDisposedException("LpmNpcSession");
            LpmCloseInfo info;
            NativeBridge.Check(NativeBridge.lpm_session_close(h, out info), "lpm_session_close");
            return info;
        }

        /// <summary>Closes, ignoring daemon errors (use Close() to see them).</summary>
        public void Dispose()
        {
            IntPtr h;
            lock (closeLock)
            {
                h = handle;
                handle = IntPtr.Zero;
            }
            if (h != IntPtr.Zero)
            {
                LpmCloseInfo ignored;
                NativeBridge.lpm_session_close(h, out ignored);
            }
            GC.SuppressFinalize(this);
        }

        ~LpmNpcSession()
        {
            // The daemon also closes a session with no stream after 5 minutes; this frees ours.
            if (handle != IntPtr.Zero)
            {
                LpmCloseInfo ignored;
                NativeBridge.lpm_session_close(handle, out ignored);
            }
        }

        void CheckFrameBuffer(byte[] dst)
        {
            if (dst == null) throw new ArgumentNullException("dst");
            if (dst.Length < FrameBytes)
                throw new LpmNpcException(LpmStatus.BufferTooSmall, "dst has " + dst.Length + " bytes, a frame needs " + FrameBytes);
        }

        static void CheckRange(Array data, int offset, int count)
        {
            if (data == null) throw new ArgumentNullException("data");
            if (offset < 0 || count < 0 || offset + count > data.Length)
                throw new LpmNpcException(LpmStatus.InvalidArgument,
                    "offset " + offset + " + count " + count + " is outside the " + data.Length + " samples given");
        }
    }
}
