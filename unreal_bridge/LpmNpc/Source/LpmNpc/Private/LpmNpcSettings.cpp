#include "LpmNpcSettings.h"

ULpmNpcSettings::ULpmNpcSettings()
	: DaemonAddress(TEXT("127.0.0.1:50061"))
	, TimeoutMs(10000)
	, bUseTls(false)
	, Delivery(ELpmNpcDelivery::Auto)
{
}
