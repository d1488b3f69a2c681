// The connection to one daemon (lpm_client), plaintext or TLS. Engine-agnostic.
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;

namespace LpmNpc
{
    /// <summary>A registered character version (from lpm_character_info).</summary>
    public sealed class LpmCharacter
    {
        public string CharacterId;
        public string Version;
        public bool Created;
        public int ReferenceCount;
    }

    /// <summary>How to connect (becomes lpm_connect_options). TLS is on when Tls is true or any
    /// Tls* field is set; it matches `lpm-npc serve --tls-cert F --tls-key F [--tls-client-ca F]`.
    /// Each piece of TLS material is a PEM file path (read by the native library during Connect)
    /// or the PEM text itself (for files that are not plain files on the target, e.g. Android
    /// StreamingAssets: load them with UnityWebRequest or from a TextAsset); give at most one of
    /// the two.</summary>
    public sealed class LpmConnectSettings
    {
        /// <summary>Bearer token if the daemon was started with --token; null = none.</summary>
        public string Token;
        /// <summary>Connection and call timeout in ms; 0 = 30000.</summary>
        public uint TimeoutMs;
        /// <summary>Talk TLS even with no Tls* field set (then the daemon's certificate must chain to
        /// gRPC's default roots, as one from a public CA does).</summary>
        public bool Tls;
        /// <summary>The CA certificate(s) to trust: a PEM file, or its text in TlsCaPem.</summary>
        public string TlsCaFile;
        public string TlsCaPem;
        /// <summary>Mutual TLS (daemon with --tls-client-ca): this client's certificate, PEM file or
        /// text; needs the key below.</summary>
        public string TlsCertFile;
        public string TlsCertPem;
        /// <summary>Mutual TLS: that certificate's unencrypted private key, PEM file or text.</summary>
        public string TlsKeyFile;
        public string TlsKeyPem;
        /// <summary>The name the daemon's certificate carries when it is not the host of the address
        /// (e.g. an IP address with a certificate for "npc.lan"); null = the host.</summary>
        public string TlsServerName;
    }

    /// <summary>What to open (becomes lpm_session_options).</summary>
    public sealed class LpmSessionSettings
    {
        /// <summary>"ID" (newest version) or "ID@VERSION".</summary>
        public string Character;
        /// <summary>Style and emotion ("cheerful"); at most 512 characters; null = none.</summary>
        public string Prompt;
        public ulong Seed;
        /// <summary>Square frame side in px (even, 32..1024); 0 = the model's native size.</summary>
        public uint Size;
        public LpmDelivery Delivery = LpmDelivery.Auto;
        public LpmIdlePolicy IdlePolicy = LpmIdlePolicy.Default;
        /// <summary>SHM ring slots 2..64 (also the INLINE frames kept); 0 = 8.</summary>
        public uint ShmSlots;
    }

    /// <summary>
    /// One daemon connection. Thread-safe; Dispose when done (sessions opened from it keep working
    /// until they are disposed themselves).
    /// </summary>
    public sealed class LpmNpcClient : IDisposable
    {
        IntPtr handle;

        LpmNpcClient(IntPtr handle) { this.handle = handle; }

        /// <summary>Connects in plaintext and waits until the channel is ready (LpmStatus.Unavailable
        /// otherwise). timeoutMs (0 = 30000) also bounds every later call of this client. For TLS,
        /// use Connect(address, LpmConnectSettings).</summary>
        public static LpmNpcClient Connect(string address, string token = null, uint timeoutMs = 0)
        {
            if (string.IsNullOrEmpty(address))
                throw new LpmNpcException(LpmStatus.InvalidArgument, "address is empty: give host:port");
            NativeBridge.CheckAbi();
            IntPtr client;
            NativeBridge.Check(NativeBridge.lpm_connect(NativeBridge.ToUtf8(address), NativeBridge.ToUtf8(token), timeoutMs, out client), "lpm_connect");
            return new LpmNpcClient(client);
        }

        /// <summary>Connects with TLS or mutual TLS (or a token and timeout only) and waits until the
        /// channel is ready. Bad TLS material fails before any network traffic, with a message
        /// naming the field and the file: LpmStatus.InvalidArgument (not PEM of the right kind, a
        /// certificate without its key, a field given both as file and text), LpmStatus.Io (a
        /// missing or unreadable file). A daemon that refuses the handshake (plaintext daemon,
        /// untrusted certificate, client certificate missing or refused) is LpmStatus.Unavailable.</summary>
        public static LpmNpcClient Connect(string address, LpmConnectSettings settings)
        {
            if (string.IsNullOrEmpty(address))
                throw new LpmNpcException(LpmStatus.InvalidArgument, "address is empty: give host:port");
            if (settings == null) throw new ArgumentNullException("settings");
            NativeBridge.CheckAbi();
            var pins = new List<GCHandle>();
            try
            {
                LpmConnectOptions options;
                NativeBridge.lpm_connect_options_init(out options);
                options.Token = NativeBridge.PinUtf8(settings.Token, pins);
                options.TimeoutMs = settings.TimeoutMs;
                options.Tls = settings.Tls ? 1 : 0;
                options.TlsCaFile = NativeBridge.PinUtf8(settings.TlsCaFile, pins);
                options.TlsCaPem = NativeBridge.PinUtf8(settings.TlsCaPem, pins);
                options.TlsCertFile = NativeBridge.PinUtf8(settings.TlsCertFile, pins);
                options.TlsCertPem = NativeBridge.PinUtf8(settings.TlsCertPem, pins);
                options.TlsKeyFile = NativeBridge.PinUtf8(settings.TlsKeyFile, pins);
                options.TlsKeyPem = NativeBridge.PinUtf8(settings.TlsKeyPem, pins);
                options.TlsServerName = NativeBridge.PinUtf8(settings.TlsServerName, pins);
                IntPtr client;
                NativeBridge.Check(NativeBridge.lpm_connect_with_options(NativeBridge.ToUtf8(address), ref options, out client),
                    "lpm_connect_with_options");
                return new LpmNpcClient(client);
            }
            finally
            {
                foreach (GCHandle pin in pins) pin.Free();
            }
        }

        internal IntPtr Handle
        {
            get
            {
                if (handle == IntPtr.Zero) throw new ObjectDisposedException("LpmNpcClient");
                return handle;
            }
        }

        /// <summary>A round trip that also checks the token; returns the stored character versions.</summary>
        public uint Ping()
        {
            uint count;
            NativeBridge.Check(NativeBridge.lpm_client_ping(Handle, out count), "lpm_client_ping");
            return count;
        }

        /// <summary>Registers a sheet directory (sheet.toml + images). Idempotent.</summary>
        public LpmCharacter RegisterCharacterDirectory(string sheetDirectory, string characterId = null)
        {
            LpmCharacterInfo info;
            NativeBridge.Check(NativeBridge.lpm_register_character_dir(Handle, NativeBridge.ToUtf8(sheetDirectory),
                NativeBridge.ToUtf8(characterId), out info), "lpm_register_character_dir");
            return new LpmCharacter
            {
                CharacterId = info.CharacterId,
                Version = info.Version,
                Created = info.Created != 0,
                ReferenceCount = (int)info.ReferenceCount,
            };
        }

        /// <summary>Opens a session and attaches its stream; its clock starts now.</summary>
        public LpmNpcSession OpenSession(LpmSessionSettings settings)
        {
            if (settings == null) throw new ArgumentNullException("settings");
            return LpmNpcSession.Open(this, settings);
        }

        public void Dispose()
        {
            if (handle != IntPtr.Zero)
            {
                NativeBridge.lpm_client_destroy(handle);
                handle = IntPtr.Zero;
            }
            GC.SuppressFinalize(this);
        }

        ~LpmNpcClient()
        {
            if (handle != IntPtr.Zero) NativeBridge.lpm_client_destroy(handle);
        }
    }
}
