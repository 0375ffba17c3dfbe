/* LD_PRELOAD shim: BLIS 0.7.0 picks 'haswell' on CPUs whose brand string does not tell the
 * number of AVX-512 FMA units (virtual "Intel Xeon Processor"); this makes it pick 'skx'. */
#include <stdbool.h>
#include <stdint.h>
bool bli_cpuid_is_skx(uint32_t family, uint32_t model, uint32_t features)
{
    (void)family; (void)model; (void)features;
    return true;
}
