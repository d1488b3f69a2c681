#include "LpmNpcSettings.h"

ULpmNpcSettings::ULpmNpcSettings()
	: DaemonAddress(TEXT("127.0.0.1:50061"))
	, TimeoutMs(10000)
	, Delivery(ELpmNpcDelivery::Auto)
{
}
