#include "LpmNpcComponent.h"

#include "Async/Async.h"
#include "Components/AudioComponent.h"
#include "Engine/Texture2D.h"
#include "GameFramework/Actor.h"
#include "HAL/PlatformTime.h"
#include "Kismet/GameplayStatics.h"
#include "Misc/Paths.h"
#include "LpmNpcAudio.h"
#include "LpmNpcModule.h"
#include "LpmNpcNative.h"
#include "LpmNpcSettings.h"
#include "RHI.h"
#include "RenderingThread.h"
#include "Sound/SoundWave.h"
#include "TextureResource.h"
#include "lpm_bridge.h"

/** Two persistent frame buffers: the game thread fills one while a render command may still
 *  upload the other; a fence says when a buffer is free again. Allocated once per frame size and
 *  kept alive by the render commands that read it (shared pointer). */
struct FLpmNpcFrameBuffers
{
	TArray<uint8> Pixels[2];
	FRenderCommandFence Fences[2];
	int32 Next = 0;
};

namespace
{
constexpr int32 SpeakPieceSamples = 1600;  // 100 ms, as a TTS player would deliver it
}

ULpmNpcComponent::ULpmNpcComponent()
{
	PrimaryComponentTick.bCanEverTick = true;
	PrimaryComponentTick.bStartWithTickEnabled = true;
}

void ULpmNpcComponent::BeginPlay()
{
	Super::BeginPlay();
	if (bOpenOnBeginPlay)
	{
		OpenSession();
	}
}

void ULpmNpcComponent::EndPlay(const EEndPlayReason::Type EndPlayReason)
{
	CloseSession();
	Super::EndPlay(EndPlayReason);
}

bool ULpmNpcComponent::IsSessionOpen() const
{
	return Native.IsValid();
}

void ULpmNpcComponent::OpenSession()
{
	if (!FLpmNpcModule::IsBridgeAvailable())
	{
		Fail(TEXT("the lpm_bridge library is not loaded (see the LogLpmNpc messages at startup)"));
		return;
	}
	CloseSession();
	const ULpmNpcSettings* Settings = GetDefault<ULpmNpcSettings>();
	FLpmNpcOpenParams Params;
	Params.Address = DaemonAddress.IsEmpty() ? Settings->DaemonAddress : DaemonAddress;
	Params.Token = Settings->Token;
	Params.TimeoutMs = static_cast<uint32>(FMath::Max(Settings->TimeoutMs, 100));
	Params.bTls = Settings->bUseTls;
	// Relative paths are under the project directory (the settings' file picker writes them so).
	auto ResolveTlsFile = [](const FFilePath& File)
	{
		return File.FilePath.IsEmpty() || !FPaths::IsRelative(File.FilePath) ? File.FilePath : FPaths::Combine(FPaths::ProjectDir(), File.FilePath);
	};
	Params.TlsCaFile = ResolveTlsFile(Settings->TlsCaFile);
	Params.TlsCertFile = ResolveTlsFile(Settings->TlsCertFile);
	Params.TlsKeyFile = ResolveTlsFile(Settings->TlsKeyFile);
	Params.TlsServerName = Settings->TlsServerName;
	Params.Character = Character;
	Params.Prompt = Prompt;
	Params.Seed = static_cast<uint64>(Seed);
	Params.Size = static_cast<uint32>(FMath::Clamp(Size, 0, 1024));
	Params.Delivery = static_cast<int32>(Settings->Delivery);
	Params.IdlePolicy = static_cast<int32>(IdlePolicy);

	const int32 Generation = ++OpenGeneration;
	TWeakObjectPtr<ULpmNpcComponent> WeakThis(this);
	// Connecting and OpenSession block (reference encoding can take a moment): not on the game thread.
	Async(EAsyncExecution::ThreadPool, [WeakThis, Generation, Params]()
	{
		TSharedPtr<FLpmNpcNative, ESPMode::ThreadSafe> Opened = MakeShared<FLpmNpcNative, ESPMode::ThreadSafe>();
		FString Error;
		if (!Opened->Open(Params, Error))
		{
			Opened.Reset();
		}
		AsyncTask(ENamedThreads::GameThread, [WeakThis, Generation, Opened, Error]() mutable
		{
			ULpmNpcComponent* Self = WeakThis.Get();
			if (Self == nullptr || Self->OpenGeneration != Generation)
			{
				// Closed or reopened meanwhile: release this one off the game thread.
				Async(EAsyncExecution::ThreadPool, [Opened = MoveTemp(Opened)]() mutable { Opened.Reset(); });
				return;
			}
			if (!Opened.IsValid())
			{
				Self->Fail(Error);
				return;
			}
			Self->AdoptSession(MoveTemp(Opened));
		});
	});
}

void ULpmNpcComponent::AdoptSession(TSharedPtr<FLpmNpcNative, ESPMode::ThreadSafe> Opened)
{
	Native = MoveTemp(Opened);
	const lpm_session_info& Info = Native->Info();
	const int32 Width = static_cast<int32>(Info.width);
	const int32 Height = static_cast<int32>(Info.height);
	if (Texture == nullptr || Texture->GetSizeX() != Width || Texture->GetSizeY() != Height)
	{
		Texture = UTexture2D::CreateTransient(Width, Height, PF_R8G8B8A8, *FString::Printf(TEXT("LpmNpc_%s"), *Character));
		Texture->SRGB = true;
		Texture->UpdateResource();
	}
	FrameBuffers = MakeShared<FLpmNpcFrameBuffers, ESPMode::ThreadSafe>();
	for (TArray<uint8>& Pixels : FrameBuffers->Pixels)
	{
		Pixels.SetNumZeroed(Width * Height * 4);
	}
	UE_LOG(LogLpmNpc, Log, TEXT("session %s: %s@%.12s, %dx%d, %s"), UTF8_TO_TCHAR(Info.session_id), *Character,
		UTF8_TO_TCHAR(Info.character_version), Width, Height,
		Info.delivery == LPM_DELIVERY_SHM ? TEXT("shared memory") : TEXT("inline frames"));
	OnSessionOpened.Broadcast();
}

void ULpmNpcComponent::CloseSession()
{
	++OpenGeneration;  // an open in flight is released when it lands
	StopListening();
	SpeakLine.Reset();
	bSpeakSegmentOpen = false;
	if (SpeakAudio != nullptr)
	{
		SpeakAudio->Stop();
		SpeakAudio = nullptr;
	}
	if (Native.IsValid())
	{
		// CloseSession is a round trip and joins the bridge's threads: not on the game thread.
		Async(EAsyncExecution::ThreadPool, [Closing = MoveTemp(Native)]() mutable { Closing.Reset(); });
	}
	Native.Reset();
}

void ULpmNpcComponent::TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction)
{
	Super::TickComponent(DeltaTime, TickType, ThisTickFunction);
	if (!Native.IsValid())
	{
		return;
	}
	FeedSpeech();
	DrainEvents();
	if (Native.IsValid())
	{
		PresentFrame();
	}
}

void ULpmNpcComponent::FeedSpeech()
{
	if (SpeakSent >= SpeakLine.Num() && !bSpeakSegmentOpen)
	{
		return;
	}
	lpm_session* Session = Native->Session();
	const double Elapsed = FPlatformTime::Seconds() - SpeakStartSeconds;
	const int64 Due = static_cast<int64>(Elapsed * LPM_SAMPLE_RATE) + SpeakPieceSamples;
	while (SpeakSent < SpeakLine.Num() && SpeakSent < Due)
	{
		const int32 Count = FMath::Min(SpeakPieceSamples, SpeakLine.Num() - SpeakSent);
		const int32 Status = lpm_session_push_audio_f32(Session, LPM_TRACK_SPEAK, SpeakLine.GetData() + SpeakSent, Count, -1);
		if (Status != LPM_OK)
		{
			Fail(FLpmNpcNative::Describe(Status, TEXT("lpm_session_push_audio_f32")));
			SpeakLine.Reset();
			SpeakSent = 0;
			bSpeakSegmentOpen = false;
			return;
		}
		SpeakSent += Count;
	}
	if (SpeakSent >= SpeakLine.Num() && bSpeakSegmentOpen)
	{
		lpm_session_segment_end(Session, LPM_TRACK_SPEAK);
		bSpeakSegmentOpen = false;
	}
}

void ULpmNpcComponent::DrainEvents()
{
	lpm_event Event;
	while (Native.IsValid() && lpm_session_poll_event(Native->Session(), &Event) == LPM_OK)
	{
		switch (Event.kind)
		{
		case LPM_EVENT_PLAYBACK_STARTED:
			if (PendingWave != nullptr)
			{
				USceneComponent* Root = GetOwner() != nullptr ? GetOwner()->GetRootComponent() : nullptr;
				SpeakAudio = Root != nullptr ? UGameplayStatics::SpawnSoundAttached(PendingWave, Root)
											 : UGameplayStatics::SpawnSound2D(this, PendingWave);
				PendingWave = nullptr;
			}
			OnPlaybackStarted.Broadcast(static_cast<int64>(Event.segment), static_cast<float>(Event.pts_ms));
			break;
		case LPM_EVENT_PLAYBACK_FINISHED:
			if (Event.interrupted && SpeakAudio != nullptr)
			{
				SpeakAudio->Stop();
			}
			OnPlaybackFinished.Broadcast(static_cast<int64>(Event.segment), static_cast<float>(Event.pts_ms), Event.interrupted != 0);
			break;
		case LPM_EVENT_STATUS:
			OnStatus.Broadcast(static_cast<float>(Event.rtf), Event.degraded != 0, UTF8_TO_TCHAR(Event.text));
			break;
		case LPM_EVENT_STREAM_ENDED:
			Fail(FString::Printf(TEXT("the session's stream ended (%s): %s"), UTF8_TO_TCHAR(lpm_status_name(Event.status)),
				UTF8_TO_TCHAR(Event.text)));
			CloseSession();
			return;
		default:
			break;  // LPM_EVENT_FRAME: frames are presented by PresentFrame at their pace
		}
	}
}

void ULpmNpcComponent::PresentFrame()
{
	FLpmNpcFrameBuffers& Buffers = *FrameBuffers;
	const int32 Index = Buffers.Next;
	if (!Buffers.Fences[Index].IsFenceComplete())
	{
		return;  // the render thread still uploads this buffer; the frame waits a tick
	}
	TArray<uint8>& Pixels = Buffers.Pixels[Index];
	lpm_frame_info Frame;
	const int32 Status = lpm_session_poll_frame(Native->Session(), Pixels.GetData(), Pixels.Num(), &Frame);
	if (Status == LPM_NO_DATA)
	{
		return;
	}
	if (Status != LPM_OK)
	{
		Fail(FLpmNpcNative::Describe(Status, TEXT("lpm_session_poll_frame")));
		return;
	}
	FTextureResource* Resource = Texture->GetResource();
	const uint8* Data = Pixels.GetData();
	const uint32 Pitch = Frame.stride;
	const uint32 Width = Frame.width;
	const uint32 Height = Frame.height;
	TSharedPtr<FLpmNpcFrameBuffers, ESPMode::ThreadSafe> KeepAlive = FrameBuffers;
	ENQUEUE_RENDER_COMMAND(LpmNpcUpdateTexture)(
		[Resource, Data, Pitch, Width, Height, KeepAlive](FRHICommandListImmediate& RHICmdList)
		{
			if (Resource == nullptr || Resource->GetTexture2DRHI() == nullptr)
			{
				return;
			}
			const FUpdateTextureRegion2D Region(0, 0, 0, 0, Width, Height);
			RHIUpdateTexture2D(Resource->GetTexture2DRHI(), 0, Region, Pitch, Data);
		});
	Buffers.Fences[Index].BeginFence();
	Buffers.Next = 1 - Index;
	OnFrame.Broadcast(static_cast<int64>(Frame.seq), static_cast<float>(Frame.pts_ms));
}

bool ULpmNpcComponent::StartLine(TArray<float>&& Mono16k, USoundWave* Wave)
{
	if (!Native.IsValid())
	{
		Fail(TEXT("speak: the session is not open yet (wait for OnSessionOpened)"));
		return false;
	}
	SpeakLine = MoveTemp(Mono16k);
	SpeakSent = 0;
	SpeakStartSeconds = FPlatformTime::Seconds();
	bSpeakSegmentOpen = true;
	PendingWave = Wave;
	return true;
}

bool ULpmNpcComponent::SpeakSoundWave(USoundWave* Wave)
{
	TArray<float> Mono16k;
	FString Error;
	if (!LpmNpcDecodeSoundWave(Wave, Mono16k, Error))
	{
		Fail(Error);
		return false;
	}
	return StartLine(MoveTemp(Mono16k), Wave);
}

bool ULpmNpcComponent::SpeakPcm(const TArray<float>& Samples, int32 SampleRate, int32 NumChannels)
{
	if (SampleRate < 8000 || NumChannels < 1 || Samples.Num() < NumChannels)
	{
		Fail(FString::Printf(TEXT("SpeakPcm: need SampleRate >= 8000 and NumChannels >= 1, got %d and %d (%d samples)"),
			SampleRate, NumChannels, Samples.Num()));
		return false;
	}
	TArray<float> Mono16k;
	FLpmNpcResampler Resampler(SampleRate, NumChannels);
	Resampler.Process(Samples.GetData(), Samples.Num() / NumChannels, Mono16k);
	return StartLine(MoveTemp(Mono16k), nullptr);
}

bool ULpmNpcComponent::StartListening()
{
	if (!Native.IsValid())
	{
		Fail(TEXT("StartListening: the session is not open yet"));
		return false;
	}
	StopListening();
	Microphone = MakeShared<FLpmNpcMicrophone, ESPMode::ThreadSafe>(Native);
	FString Error;
	if (!Microphone->Start(Error))
	{
		Microphone.Reset();
		Fail(Error);
		return false;
	}
	return true;
}

void ULpmNpcComponent::StopListening()
{
	if (!Microphone.IsValid())
	{
		return;
	}
	Microphone->Stop();
	Microphone.Reset();
	if (Native.IsValid())
	{
		lpm_session_segment_end(Native->Session(), LPM_TRACK_LISTEN);
	}
}

void ULpmNpcComponent::Interrupt()
{
	SpeakLine.Reset();
	SpeakSent = 0;
	bSpeakSegmentOpen = false;
	PendingWave = nullptr;
	if (SpeakAudio != nullptr)
	{
		SpeakAudio->Stop();
	}
	if (Native.IsValid())
	{
		const int32 Status = lpm_session_interrupt(Native->Session());
		if (Status != LPM_OK)
		{
			Fail(FLpmNpcNative::Describe(Status, TEXT("lpm_session_interrupt")));
		}
	}
}

void ULpmNpcComponent::SetPrompt(const FString& NewPrompt)
{
	Prompt = NewPrompt;
	if (Native.IsValid())
	{
		const int32 Status = lpm_session_set_prompt(Native->Session(), TCHAR_TO_UTF8(*NewPrompt));
		if (Status != LPM_OK)
		{
			Fail(FLpmNpcNative::Describe(Status, TEXT("lpm_session_set_prompt")));
		}
	}
}

void ULpmNpcComponent::Fail(const FString& Message)
{
	UE_LOG(LogLpmNpc, Warning, TEXT("%s: %s"), *GetNameSafe(GetOwner()), *Message);
	OnError.Broadcast(Message);
}
