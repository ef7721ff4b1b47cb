/* SPDX-License-Identifier: GPL-2.0 */
/*
 * alt_clean.S — ALTERNATIVE / ALTERNATIVE_2 uses that objtool 6.12 accepts:
 * every offset that is an instruction boundary in more than one of the
 * original and its replacements has the same CFI state in all of them.
 */
#include <linux/linkage.h>
#include <asm/alternative.h>
#include <asm/cpufeatures.h>

	.text

/* Empty original (padded with 3 single-byte nops) vs. lfence. */
SYM_FUNC_START(kmod_alt_lfence)
	ALTERNATIVE "", "lfence", X86_FEATURE_LFENCE_RDTSC
	rdtsc
	shl	$32, %rdx
	or	%rdx, %rax
	RET
SYM_FUNC_END(kmod_alt_lfence)

/* Call replaced by another call, inside a frame with a saved register. */
SYM_FUNC_START(kmod_alt_call)
	push	%rbx
	mov	%rdi, %rbx
	ALTERNATIVE "call kmod_c_helper", "call kmod_c_helper_fast", X86_FEATURE_XMM2
	add	%rbx, %rax
	pop	%rbx
	RET
SYM_FUNC_END(kmod_alt_call)

/*
 * push/pop inside the replacement, original one 5-byte nop: the shared
 * boundaries are only 0 and 5, where both have the function's entry state.
 */
SYM_FUNC_START(kmod_alt_pushpop_inside_long_insn)
	ALTERNATIVE "nopl 0x0(%rax,%rax,1)", "push %rax; pop %rax", X86_FEATURE_XMM2
	RET
SYM_FUNC_END(kmod_alt_pushpop_inside_long_insn)

/*
 * Same depth at offset 1 in both, and rax/rcx are not callee-saved, so
 * objtool records no saved register for either push.
 */
SYM_FUNC_START(kmod_alt_pushpop_same_depth)
	ALTERNATIVE "push %rax; pop %rax", "push %rcx; pop %rcx", X86_FEATURE_XMM2
	RET
SYM_FUNC_END(kmod_alt_pushpop_same_depth)

/* Three-way choice between calls of equal length. */
SYM_FUNC_START(kmod_alt2_calls)
	ALTERNATIVE_2 "call kmod_c_helper", "call kmod_c_helper_fast", X86_FEATURE_XMM2, \
		      "call kmod_c_helper_faster", X86_FEATURE_AVX2
	RET
SYM_FUNC_END(kmod_alt2_calls)

/* Jump in the original (the kernel's common "jmp .Lskip", "" pattern). */
SYM_FUNC_START(kmod_alt_jmp_orig)
	ALTERNATIVE "jmp .Lskip_fence", "", X86_FEATURE_LFENCE_RDTSC
	lfence
.Lskip_fence:
	xor	%eax, %eax
	RET
SYM_FUNC_END(kmod_alt_jmp_orig)

/* Jump out of a replacement into the function body. */
SYM_FUNC_START(kmod_alt_jmp_repl)
	push	%rbx
	ALTERNATIVE "", "jmp .Lrepl_target", X86_FEATURE_XMM2
	mov	$1, %eax
	pop	%rbx
	RET
.Lrepl_target:
	mov	$2, %eax
	pop	%rbx
	RET
SYM_FUNC_END(kmod_alt_jmp_repl)

/* ALTERNATIVE_2 where both replacements push/pop at the same offsets. */
SYM_FUNC_START(kmod_alt2_same_shape)
	ALTERNATIVE_2 "nopl 0x0(%rax,%rax,1)", "push %rax; pop %rax", X86_FEATURE_XMM2, \
		      "push %rdx; pop %rdx", X86_FEATURE_AVX2
	RET
SYM_FUNC_END(kmod_alt2_same_shape)
