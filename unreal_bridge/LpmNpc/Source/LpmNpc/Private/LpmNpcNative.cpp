#include "LpmNpcNative.h"

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
	const FTCHARToUTF8 Address(*Params.Address);
	const FTCHARToUTF8 Token(*Params.Token);
	int32 Status = lpm_connect(Address.Get(), Token.Length() > 0 ? Token.Get() : nullptr, Params.TimeoutMs, &Client);
	if (Status != LPM_OK)
	{
		OutError = Describe(Status, TEXT("lpm_connect"));
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
