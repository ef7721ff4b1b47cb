/*
 * altcfi's bundled example: two paravirt-style ALTERNATIVE sites, the way arch/x86 writes them.
 *
 * save_fl_ok:  native "pushf; pop %rax" vs. Xen's "call xen_save_fl". The only byte offset where both sides have an
 *              instruction boundary is +0, so the unwinder's single ORC table can describe both: clean.
 * save_fl_bad: the replacement saves %rcx around the flags read with two pushes. At +2 the original is back at
 *              CFA=rsp+8 (after "pop %rax") while the replacement has pushed twice (CFA=rsp+24): objtool reports
 *              "stack layout conflict in alternatives", and altcfi explains it.
 *
 * Build: gcc -c -g examples/demo.S -o demo.o   (scripts/demo.sh does this and runs altcfi check on it)
 */
#include "../tests/fixtures/alt/alt-macros-612.h"

	.text
SYM_FUNC_START(save_fl_ok)
	ALTERNATIVE "pushf; pop %rax", "call xen_save_fl", X86_FEATURE_XENPV
	ret
SYM_FUNC_END(save_fl_ok)

SYM_FUNC_START(save_fl_bad)
	ALTERNATIVE "pushf; pop %rax", "push %rcx; push %rcx; pop %rax; pop %rcx", X86_FEATURE_XENPV
	ret
SYM_FUNC_END(save_fl_bad)
