// The Unity component: a thin layer over LpmNpcClient / LpmNpcSession (Runtime/Core), which own
// the native session and its threads. Everything here runs on the main thread: frames are
// copied straight into the texture's memory (GetRawTextureData + Apply(false)) and the session's
// events are drained in Update and raised as UnityEvents.
using System;
using System.Collections.Generic;
using System.Threading.Tasks;
using Unity.Collections;
using Unity.Collections.LowLevel.Unsafe;
using UnityEngine;
using UnityEngine.Events;

namespace LpmNpc
{
    /// <summary>(segment, pts in ms).</summary>
    [Serializable] public class LpmPlaybackStartedEvent : UnityEvent<int, float> { }

    /// <summary>(segment, pts in ms, interrupted).</summary>
    [Serializable] public class LpmPlaybackFinishedEvent : UnityEvent<int, float, bool> { }

    /// <summary>(real-time factor, degraded, degraded reason).</summary>
    [Serializable] public class LpmStatusEvent : UnityEvent<float, bool, string> { }

    /// <summary>A living character on a Renderer: opens a daemon session on enable, shows its
    /// frames, speaks AudioClips, listens to the microphone, releases everything on disable.</summary>
    [AddComponentMenu("LPM NPC/LPM NPC Avatar")]
    public sealed class LpmNpcAvatar : MonoBehaviour, IDisposable
    {
        [Header("Daemon")]
        [Tooltip("host:port of `lpm-npc serve`")]
        public string daemonAddress = "127.0.0.1:50061";
        [Tooltip("Bearer token if the daemon was started with --token (empty = none)")]
        public string token = "";
        [Tooltip("Connection and call timeout, ms")]
        public int timeoutMs = 10000;

        [Header("TLS (a daemon started with --tls-cert)")]
        [Tooltip("Connect with TLS; on by itself when a TLS file below is set")]
        public bool useTls = false;
        [Tooltip("PEM file of the CA that signed the daemon's certificate: absolute, or relative to StreamingAssets (empty = the default roots)")]
        public string tlsCaFile = "";
        [Tooltip("Mutual TLS (--tls-client-ca): this client's certificate, PEM file, absolute or relative to StreamingAssets")]
        public string tlsCertFile = "";
        [Tooltip("Mutual TLS: that certificate's unencrypted private key, PEM file, absolute or relative to StreamingAssets")]
        public string tlsKeyFile = "";
        [Tooltip("The name on the daemon's certificate when it is not the address's host (empty = the host)")]
        public string tlsServerName = "";

        [Header("Character")]
        [Tooltip("Registered character: ID or ID@VERSION")]
        public string character = "mira";
        [Tooltip("Optional: a sheet directory under StreamingAssets to register before opening")]
        public string registerSheetFromStreamingAssets = "";
        [Tooltip("Square frame side in px (even, 32..1024); 0 = the model's native size")]
        public int size = 0;
        [Tooltip("Style and emotion, e.g. \"cheerful\"")]
        public string prompt = "";
        public long seed = 0;
        public LpmIdlePolicy idlePolicy = LpmIdlePolicy.Default;
        public LpmDelivery delivery = LpmDelivery.Auto;

        [Header("Output")]
        [Tooltip("Gets the frames as its main texture (flipped: frames are stored top row first)")]
        public Renderer targetRenderer;
        public string textureProperty = "_MainTex";
        [Tooltip("Plays the NPC's line when the daemon starts showing it")]
        public AudioSource speakSource;

        [Header("Events (main thread)")]
        public LpmPlaybackStartedEvent onPlaybackStarted = new LpmPlaybackStartedEvent();
        public LpmPlaybackFinishedEvent onPlaybackFinished = new LpmPlaybackFinishedEvent();
        public LpmStatusEvent onStatus = new LpmStatusEvent();
        public UnityEvent onSessionOpened = new UnityEvent();

        /// <summary>The frames, RGBA32; null until the session is open.</summary>
        public Texture2D Texture { get; private set; }
        public bool IsOpen { get { return session != null; } }
        public string LastError { get; private set; }

        LpmNpcClient client;
        LpmNpcSession session;
        readonly RealtimeFeeder speakFeeder = new RealtimeFeeder(LpmTrack.Speak);
        AudioClip pendingLine;

        // Opening runs off the main thread; its result is adopted by Update.
        readonly object openLock = new object();
        int openGeneration;
        LpmNpcClient openedClient;
        LpmNpcSession openedSession;
        string openError;

        // Microphone (listen track).
        string micDevice;
        AudioClip micClip;
        LoopingBufferCursor micCursor;
        StreamingResampler micResampler;
        float[] micBuffer;
        readonly List<float> micSamples = new List<float>();

        void OnEnable()
        {
            LastError = null;
            var settings = new LpmSessionSettings
            {
                Character = character,
                Prompt = string.IsNullOrEmpty(prompt) ? null : prompt,
                Seed = unchecked((ulong)seed),
                Size = (uint)Mathf.Max(0, size),
                Delivery = delivery,
                IdlePolicy = idlePolicy,
            };
            string sheet = string.IsNullOrEmpty(registerSheetFromStreamingAssets)
                ? null : System.IO.Path.Combine(Application.streamingAssetsPath, registerSheetFromStreamingAssets);
            string address = daemonAddress;
            LpmConnectSettings connection = ConnectSettings();
            int generation;
            lock (openLock) generation = ++openGeneration;
            Task.Run(() => Open(generation, address, connection, sheet, settings));
        }

        /// <summary>The connection fields as LpmConnectSettings, TLS file paths resolved against
        /// StreamingAssets (main thread: it reads Application.streamingAssetsPath). On Android the
        /// StreamingAssets are inside the APK, not files: give absolute paths (e.g. under
        /// Application.persistentDataPath) or connect with LpmConnectSettings.TlsCaPem yourself.</summary>
        public LpmConnectSettings ConnectSettings()
        {
            return new LpmConnectSettings
            {
                Token = string.IsNullOrEmpty(token) ? null : token,
                TimeoutMs = (uint)Mathf.Max(0, timeoutMs),
                Tls = useTls,
                TlsCaFile = ResolveTlsFile(tlsCaFile),
                TlsCertFile = ResolveTlsFile(tlsCertFile),
                TlsKeyFile = ResolveTlsFile(tlsKeyFile),
                TlsServerName = string.IsNullOrEmpty(tlsServerName) ? null : tlsServerName,
            };
        }

        static string ResolveTlsFile(string path)
        {
            if (string.IsNullOrEmpty(path)) return null;
            return System.IO.Path.IsPathRooted(path) ? path : System.IO.Path.Combine(Application.streamingAssetsPath, path);
        }

        void Open(int generation, string address, LpmConnectSettings connection, string sheet, LpmSessionSettings settings)
        {
            LpmNpcClient c = null;
            LpmNpcSession s = null;
            string error = null;
            try
            {
                c = LpmNpcClient.Connect(address, connection);
                if (sheet != null) c.RegisterCharacterDirectory(sheet, settings.Character);
                s = c.OpenSession(settings);
            }
            catch (Exception e)  // DllNotFoundException too: the native plugin is missing
            {
                error = e.Message;
            }
            lock (openLock)
            {
                if (generation == openGeneration)
                {
                    openedClient = c;
                    openedSession = s;
                    openError = error;
                    return;
                }
            }
            // Disabled (or re-enabled) meanwhile: this result is nobody's.
            if (s != null) s.Dispose();
            if (c != null) c.Dispose();
        }

        void OnDisable()
        {
            lock (openLock)
            {
                ++openGeneration;
                if (openedSession != null) openedSession.Dispose();
                if (openedClient != null) openedClient.Dispose();
                openedSession = null;
                openedClient = null;
            }
            Dispose();
        }

        /// <summary>Releases the native session and client (also done by OnDisable).</summary>
        public void Dispose()
        {
            StopListening();
            speakFeeder.Stop();
            if (session != null) session.Dispose();
            if (client != null) client.Dispose();
            session = null;
            client = null;
        }

        void Update()
        {
            AdoptOpenedSession();
            if (session == null) return;
            try
            {
                speakFeeder.Feed(session, Time.realtimeSinceStartupAsDouble);
                FeedMicrophone();
                DrainEvents();
                PresentFrame();
            }
            catch (LpmNpcException e)
            {
                // The stream ended (daemon gone, session closed): report once and release it.
                Fail(e.Message);
                Dispose();
            }
        }

        void AdoptOpenedSession()
        {
            LpmNpcSession s;
            LpmNpcClient c;
            string error;
            lock (openLock)
            {
                s = openedSession;
                c = openedClient;
                error = openError;
                openedSession = null;
                openedClient = null;
                openError = null;
            }
            if (error != null) Fail(error);
            if (s == null) return;
            session = s;
            client = c;
            LpmSessionInfo info = s.Info;
            if (Texture == null || Texture.width != info.Width || Texture.height != info.Height)
            {
                Texture = new Texture2D((int)info.Width, (int)info.Height, TextureFormat.RGBA32, false);
                Texture.name = "LpmNpc " + character;
            }
            if (targetRenderer != null)
            {
                Material material = targetRenderer.material;
                material.SetTexture(textureProperty, Texture);
                material.SetTextureScale(textureProperty, new Vector2(1, -1));  // rows arrive top first
                material.SetTextureOffset(textureProperty, new Vector2(0, 1));
            }
            onSessionOpened.Invoke();
        }

        unsafe void PresentFrame()
        {
            // The texture's own CPU memory, persistent for its lifetime: one copy from the ring.
            NativeArray<byte> raw = Texture.GetRawTextureData<byte>();
            IntPtr dst = (IntPtr)NativeArrayUnsafeUtility.GetUnsafeBufferPointerWithoutChecks(raw);
            LpmFrameInfo frame;
            if (session.TryPollFrame(dst, raw.Length, out frame)) Texture.Apply(false);
        }

        void DrainEvents()
        {
            LpmEvent ev;
            while (session != null && session.TryPollEvent(out ev))
            {
                switch (ev.EventKind)
                {
                    case LpmEventKind.PlaybackStarted:
                        if (speakSource != null && pendingLine != null)
                        {
                            speakSource.clip = pendingLine;
                            speakSource.Play();
                        }
                        onPlaybackStarted.Invoke((int)ev.Segment, (float)ev.PtsMs);
                        break;
                    case LpmEventKind.PlaybackFinished:
                        if (ev.Interrupted != 0 && speakSource != null) speakSource.Stop();
                        onPlaybackFinished.Invoke((int)ev.Segment, (float)ev.PtsMs, ev.Interrupted != 0);
                        break;
                    case LpmEventKind.Status:
                        onStatus.Invoke((float)ev.Rtf, ev.Degraded != 0, ev.Text);
                        break;
                    case LpmEventKind.StreamEnded:
                        throw new LpmNpcException((LpmStatus)ev.Status, "the session's stream ended: " + ev.Text);
                }
            }
        }

        /// <summary>Speaks a line: its samples go to the SPEAK track in real time; the AudioSource
        /// plays it when the daemon starts showing it. The clip must be readable (Load Type
        /// "Decompress On Load").</summary>
        public void SpeakClip(AudioClip clip)
        {
            if (clip == null) throw new ArgumentNullException("clip");
            if (session == null) { Fail("SpeakClip: the session is not open yet"); return; }
            var interleaved = new float[clip.samples * clip.channels];
            if (!clip.GetData(interleaved, 0)) { Fail("SpeakClip: " + clip.name + " is not readable (use Decompress On Load)"); return; }
            var mono16k = new List<float>(clip.samples * StreamingResampler.OutputRate / clip.frequency + 1);
            new StreamingResampler(clip.frequency, clip.channels).Process(interleaved, 0, clip.samples, mono16k);
            pendingLine = clip;
            speakFeeder.Start(mono16k.ToArray(), Time.realtimeSinceStartupAsDouble);
        }

        /// <summary>The player's microphone drives the LISTEN track until StopListening.</summary>
        public void StartListening(string device = null)
        {
            if (session == null) { Fail("StartListening: the session is not open yet"); return; }
            if (Microphone.devices.Length == 0) { Fail("StartListening: no microphone"); return; }
            StopListening();
            micDevice = device;
            int min, max;
            Microphone.GetDeviceCaps(device, out min, out max);
            int rate = (min == 0 && max == 0) ? StreamingResampler.OutputRate : Mathf.Clamp(StreamingResampler.OutputRate, min, max);
            micClip = Microphone.Start(device, true, 1, rate);
            micBuffer = new float[micClip.samples * micClip.channels];
            micCursor = new LoopingBufferCursor(micClip.samples, Microphone.GetPosition(device));
            micResampler = new StreamingResampler(micClip.frequency, micClip.channels);
        }

        public void StopListening()
        {
            if (micClip == null) return;
            Microphone.End(micDevice);
            micClip = null;
            if (session != null) session.EndSegment(LpmTrack.Listen);
        }

        void FeedMicrophone()
        {
            if (micClip == null) return;
            int start, first, second;
            if (micCursor.Advance(Microphone.GetPosition(micDevice), out start, out first, out second) == 0) return;
            micClip.GetData(micBuffer, 0);  // the whole 1 s loop into one persistent buffer
            micSamples.Clear();
            micResampler.Process(micBuffer, start * micClip.channels, first, micSamples);
            if (second > 0) micResampler.Process(micBuffer, 0, second, micSamples);
            float[] pcm = micSamples.ToArray();
            session.PushAudio(LpmTrack.Listen, pcm, 0, pcm.Length);
        }

        /// <summary>Barge-in: the NPC stops; answered by onPlaybackFinished(interrupted = true).</summary>
        public void Interrupt()
        {
            speakFeeder.Stop();
            if (speakSource != null) speakSource.Stop();
            if (session != null) session.Interrupt();
        }

        public void SetPrompt(string text)
        {
            prompt = text;
            if (session != null) session.SetPrompt(text);
        }

        void Fail(string message)
        {
            LastError = message;
            Debug.LogError("LpmNpcAvatar " + name + ": " + message, this);
        }
    }
}
