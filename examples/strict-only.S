/*
 * A "strict-only" alternatives conflict: objtool warns, yet the unwinder is right in every variant.
 *
 * rbp_depth is a frame-pointer function: its CFA is rbp+16 throughout. The replacement pushes and pops %rax, so at
 * +0x1 it is 8 bytes deeper than the original (stack size 24 vs 16) and objtool reports "stack layout conflict in
 * alternatives". ORC records only the CFA rule (rbp+16), which is the same for both: altcfi says so
 * (`unwind: strict-only`, a Warning, not an Error). Compare examples/demo.S, whose conflict breaks the unwinder.
 *
 * Build: gcc -c -g examples/strict-only.S -o strict-only.o && altcfi check strict-only.o
 */
#include "../tests/fixtures/alt/alt-macros-612.h"
	.text
SYM_FUNC_START(rbp_depth)
	push %rbp
	mov %rsp, %rbp
	ALTERNATIVE "nop; nop", "push %rax; pop %rax", X86_FEATURE_XENPV
	call ext_fn
	pop %rbp
	ret
SYM_FUNC_END(rbp_depth)
