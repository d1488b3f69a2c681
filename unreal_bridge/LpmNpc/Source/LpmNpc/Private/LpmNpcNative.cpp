#include "LpmNpcNative.h"

#include "Misc/FileHelper.h"

namespace
{
	/** Reads one TLS file of the settings into OutPem ("" when Path is empty). */
	bool LoadPem(const FString& Path, const TCHAR* Setting, FString& OutPem, FString& OutError)
	{
		OutPem.Reset();
		if (Path.IsEmpty())
		{
			return true;
		}
		if (!FFileHelper::LoadFileToString(OutPem, *Path))
		{
			OutError = FString::Printf(TEXT("Project Settings > LPM NPC > %s: cannot read %s (missing, or not staged with the game: "
				"Project Settings > Packaging > Additional Non-Asset Directories to Package)"), Setting, *Path);
			return false;
		}
		if (OutPem.IsEmpty())
		{
			// The bridge would take "" as "not set" (the default roots, no client certificate).
			OutError = FString::Printf(TEXT("Project Settings > LPM NPC > %s: %s is empty; expected PEM"), Setting, *Path);
			return false;
		}
		return true;
	}
}

FLpmNpcNative::~FLpmNpcNative()
{
	Close();
}

FString FLpmNpcNative::Describe(int32 Status, const TCHAR* Call)
{
	return FString::Printf(TEXT("%s: %s: %s"), Call, UTF8_TO_TCHAR(lpm_status_name(Status)), UTF8_TO_TCHAR(lpm_last_error()));
}

bool FLpmNpcNative::Open(const FLpmNpcOpenParams& Params, FString& OutError)
{
	FString CaPem, CertPem, KeyPem;
	if (!LoadPem(Params.TlsCaFile, TEXT("TLS CA File"), CaPem, OutError)
		|| !LoadPem(Params.TlsCertFile, TEXT("TLS Client Certificate File"), CertPem, OutError)
		|| !LoadPem(Params.TlsKeyFile, TEXT("TLS Client Key File"), KeyPem, OutError))
	{
		return false;
	}
	const FTCHARToUTF8 Address(*Params.Address);
	const FTCHARToUTF8 Token(*Params.Token);
	const FTCHARToUTF8 CaUtf8(*CaPem);
	const FTCHARToUTF8 CertUtf8(*CertPem);
	const FTCHARToUTF8 KeyUtf8(*KeyPem);
	const FTCHARToUTF8 ServerName(*Params.TlsServerName);
	lpm_connect_options Connection;
	lpm_connect_options_init(&Connection);
	// Empty strings are "not set" for the bridge.
	Connection.token = Token.Get();
	Connection.timeout_ms = Params.TimeoutMs;
	Connection.tls = Params.bTls ? 1 : 0;
	Connection.tls_ca_pem = CaUtf8.Get();
	Connection.tls_cert_pem = CertUtf8.Get();
	Connection.tls_key_pem = KeyUtf8.Get();
	Connection.tls_server_name = ServerName.Get();
	int32 Status = lpm_connect_with_options(Address.Get(), &Connection, &Client);
	if (Status != LPM_OK)
	{
		OutError = Describe(Status, TEXT("lpm_connect_with_options"));
		if (Status == LPM_ERR_INVALID_ARGUMENT && !(Params.TlsCaFile.IsEmpty() && Params.TlsCertFile.IsEmpty() && Params.TlsKeyFile.IsEmpty()))
		{
			// The bridge names its fields; say which settings' files they came from.
			OutError += FString::Printf(TEXT(" (tls_ca_pem: TLS CA File '%s', tls_cert_pem: TLS Client Certificate File '%s', tls_key_pem: TLS Client Key File '%s')"),
				*Params.TlsCaFile, *Params.TlsCertFile, *Params.TlsKeyFile);
		}
		return false;
	}
	const FTCHARToUTF8 Character(*Params.Character);
	const FTCHARToUTF8 Prompt(*Params.Prompt);
	lpm_session_options Options;
	lpm_session_options_init(&Options);
	Options.character = Character.Get();
	Options.prompt = Prompt.Length() > 0 ? Prompt.Get() : nullptr;
	Options.seed = Params.Seed;
	Options.width = Params.Size;
	Options.height = Params.Size;
	Options.delivery = Params.Delivery;
	Options.idle_policy = Params.IdlePolicy;
	Status = lpm_session_open(Client, &Options, &SessionHandle);
	if (Status != LPM_OK)
	{
		OutError = Describe(Status, TEXT("lpm_session_open"));
		Close();
		return false;
	}
	Status = lpm_session_get_info(SessionHandle, &SessionInfo);
	if (Status != LPM_OK)
	{
		OutError = Describe(Status, TEXT("lpm_session_get_info"));
		Close();
		return false;
	}
	return true;
}

void FLpmNpcNative::Close()
{
	FScopeLock Lock(&CloseLock);
	if (SessionHandle != nullptr)
	{
		lpm_close_info Info;
		// The handle is released whatever the daemon answers (it may be gone already).
		lpm_session_close(SessionHandle, &Info);
		SessionHandle = nullptr;
	}
	if (Client != nullptr)
	{
		lpm_client_destroy(Client);
		Client = nullptr;
	}
}
