// ULpmNpcComponent: one living character. A thin layer over bridge_core (lpm_bridge.h): the
// native session (FLpmNpcNative) owns the gRPC stream and its threads; this component opens it
// off the game thread, drains its events on the game thread and raises them as Blueprint events,
// and copies frames into a persistent buffer that a render command uploads with
// RHIUpdateTexture2D.
#pragma once

#include "Components/ActorComponent.h"
#include "CoreMinimal.h"
#include "LpmNpcTypes.h"
#include "LpmNpcComponent.generated.h"

class FLpmNpcNative;
class FLpmNpcMicrophone;
struct FLpmNpcFrameBuffers;
class UAudioComponent;
class USoundWave;
class UTexture2D;

DECLARE_DYNAMIC_MULTICAST_DELEGATE(FLpmNpcSessionOpened);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FLpmNpcError, const FString&, Message);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FLpmNpcFrame, int64, Seq, float, PtsMs);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FLpmNpcPlaybackStarted, int64, Segment, float, PtsMs);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_ThreeParams(FLpmNpcPlaybackFinished, int64, Segment, float, PtsMs, bool, bInterrupted);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_ThreeParams(FLpmNpcStatus, float, Rtf, bool, bDegraded, const FString&, Reason);

UCLASS(ClassGroup = (LpmNpc), meta = (BlueprintSpawnableComponent, DisplayName = "LPM NPC"))
class LPMNPC_API ULpmNpcComponent : public UActorComponent
{
	GENERATED_BODY()

public:
	ULpmNpcComponent();

	/** host:port of the daemon; empty = Project Settings > LPM NPC. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "LPM NPC|Connection")
	FString DaemonAddress;

	/** The registered character: ID or ID@VERSION. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "LPM NPC")
	FString Character = TEXT("mira");

	/** Square frame side in px (even, 32..1024); 0 = the model's native size. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "LPM NPC", meta = (ClampMin = "0", ClampMax = "1024"))
	int32 Size = 0;

	/** Style and emotion, e.g. "cheerful". */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "LPM NPC")
	FString Prompt;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "LPM NPC")
	int64 Seed = 0;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "LPM NPC")
	ELpmNpcIdlePolicy IdlePolicy = ELpmNpcIdlePolicy::Default;

	/** Open the session in BeginPlay. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "LPM NPC")
	bool bOpenOnBeginPlay = true;

	/** The frames (PF_R8G8B8A8, sRGB); valid once OnSessionOpened fired. */
	UPROPERTY(BlueprintReadOnly, Category = "LPM NPC")
	TObjectPtr<UTexture2D> Texture;

	UPROPERTY(BlueprintAssignable, Category = "LPM NPC")
	FLpmNpcSessionOpened OnSessionOpened;

	UPROPERTY(BlueprintAssignable, Category = "LPM NPC")
	FLpmNpcError OnError;

	/** A new frame is on the texture. */
	UPROPERTY(BlueprintAssignable, Category = "LPM NPC")
	FLpmNpcFrame OnFrame;

	/** The NPC's line starts showing: its audio starts playing now. */
	UPROPERTY(BlueprintAssignable, Category = "LPM NPC")
	FLpmNpcPlaybackStarted OnPlaybackStarted;

	/** The line was shown to its end, or cut short by Interrupt (bInterrupted). */
	UPROPERTY(BlueprintAssignable, Category = "LPM NPC")
	FLpmNpcPlaybackFinished OnPlaybackFinished;

	/** About once a second: the daemon's real-time factor and whether it is degraded. */
	UPROPERTY(BlueprintAssignable, Category = "LPM NPC")
	FLpmNpcStatus OnStatus;

	/** Connects and opens the session off the game thread; OnSessionOpened or OnError follows. */
	UFUNCTION(BlueprintCallable, Category = "LPM NPC")
	void OpenSession();

	UFUNCTION(BlueprintCallable, Category = "LPM NPC")
	void CloseSession();

	UFUNCTION(BlueprintPure, Category = "LPM NPC")
	bool IsSessionOpen() const;

	/** Speaks a sound wave: its PCM goes to the SPEAK track in real time and the wave plays on
	 *  OnPlaybackStarted. False (and OnError) if its PCM cannot be read. */
	UFUNCTION(BlueprintCallable, Category = "LPM NPC")
	bool SpeakSoundWave(USoundWave* Wave);

	/** Speaks PCM from a TTS engine (interleaved floats at any rate); played by the caller. */
	UFUNCTION(BlueprintCallable, Category = "LPM NPC")
	bool SpeakPcm(const TArray<float>& Samples, int32 SampleRate, int32 NumChannels);

	/** The default microphone (AudioCapture) drives the LISTEN track until StopListening. */
	UFUNCTION(BlueprintCallable, Category = "LPM NPC")
	bool StartListening();

	UFUNCTION(BlueprintCallable, Category = "LPM NPC")
	void StopListening();

	/** Barge-in: the NPC stops; answered by OnPlaybackFinished with bInterrupted. */
	UFUNCTION(BlueprintCallable, Category = "LPM NPC")
	void Interrupt();

	UFUNCTION(BlueprintCallable, Category = "LPM NPC")
	void SetPrompt(const FString& NewPrompt);

	virtual void TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction) override;

protected:
	virtual void BeginPlay() override;
	virtual void EndPlay(const EEndPlayReason::Type EndPlayReason) override;

private:
	void AdoptSession(TSharedPtr<FLpmNpcNative, ESPMode::ThreadSafe> Opened);
	void FeedSpeech();
	void DrainEvents();
	void PresentFrame();
	void Fail(const FString& Message);
	bool StartLine(TArray<float>&& Mono16k, USoundWave* Wave);

	TSharedPtr<FLpmNpcNative, ESPMode::ThreadSafe> Native;
	TSharedPtr<FLpmNpcFrameBuffers, ESPMode::ThreadSafe> FrameBuffers;
	TSharedPtr<FLpmNpcMicrophone, ESPMode::ThreadSafe> Microphone;
	int32 OpenGeneration = 0;

	// The line being spoken: 16 kHz mono, pushed in 100 ms pieces as real time passes.
	TArray<float> SpeakLine;
	int32 SpeakSent = 0;
	double SpeakStartSeconds = 0.0;
	bool bSpeakSegmentOpen = false;
	UPROPERTY()
	TObjectPtr<USoundWave> PendingWave;
	UPROPERTY()
	TObjectPtr<UAudioComponent> SpeakAudio;
};
