/* Optimizer kernel dispatch (optim_kernels.h). */
#include "optim_kernels.h"
#include "cpu.h"

#include <string.h>

const fm_optim_kernel_table fm_optim_table_generic = {"generic", NULL};

static const fm_optim_kernel_table *fm_optim_detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    if (fm_cpu_has_avx512()) return &fm_optim_table_avx512;
#endif
    return &fm_optim_table_generic;
}

static const fm_optim_kernel_table *g_optim = NULL;

const fm_optim_kernel_table *fm_optim_table(void) {
    const fm_optim_kernel_table *t = __atomic_load_n(&g_optim, __ATOMIC_ACQUIRE);
    if (!t) {   /* benign race: every thread computes the same answer */
        t = fm_optim_detect();
        __atomic_store_n(&g_optim, t, __ATOMIC_RELEASE);
    }
    return t;
}

const char *fm_optim_target_name(void) { return fm_optim_table()->name; }

int fm_optim_set_target(const char *name) {
    const fm_optim_kernel_table *t = NULL;
    if (!name) return -1;
    if (strcmp(name, "auto") == 0) t = fm_optim_detect();
    else if (strcmp(name, "generic") == 0) t = &fm_optim_table_generic;
#if defined(__x86_64__) || defined(__i386__)
    else if (strcmp(name, "avx512") == 0) t = fm_cpu_has_avx512() ? &fm_optim_table_avx512 : NULL;
#endif
    if (!t) return -1;
    __atomic_store_n(&g_optim, t, __ATOMIC_RELEASE);
    return 0;
}
