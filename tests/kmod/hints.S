/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hints.S — SYM_* linkage macros, unwind hints, FRAME_BEGIN/FRAME_END,
 * exception-table entries and a hand-made jump label, all expected to pass
 * objtool 6.12 cleanly.
 */
#include <linux/linkage.h>
#include <linux/objtool.h>
#include <asm/asm.h>
#include <asm/frame.h>
#include <asm/nops.h>
#include <asm/unwind_hints.h>

	.text

/* FRAME_BEGIN/FRAME_END expand to nothing here: Debian's 6.12 config is
 * ORC-only (no CONFIG_FRAME_POINTER). */
SYM_FUNC_START(kmod_asm_framed)
	FRAME_BEGIN
	call	kmod_c_helper
	FRAME_END
	RET
SYM_FUNC_END(kmod_asm_framed)

/* The same, with an explicit rbp frame and a callee-saved register. */
SYM_FUNC_START(kmod_asm_bp_frame)
	push	%rbp
	mov	%rsp, %rbp
	push	%rbx
	mov	%rdi, %rbx
	call	kmod_c_helper
	add	%rbx, %rax
	pop	%rbx
	pop	%rbp
	RET
SYM_FUNC_END(kmod_asm_bp_frame)

/*
 * Interrupt-entry shape: starts on a hardware iret frame, builds a pt_regs,
 * calls C, unwinds it again and irets.
 */
.macro KMOD_PUSH_REGS
	pushq	%rdi
	pushq	%rsi
	pushq	%rdx
	pushq	%rcx
	pushq	%rax
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%rbx
	pushq	%rbp
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	UNWIND_HINT_REGS
.endm

.macro KMOD_POP_REGS
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbp
	popq	%rbx
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rax
	popq	%rcx
	popq	%rdx
	popq	%rsi
	popq	%rdi
.endm

SYM_CODE_START(kmod_asm_irq_entry)
	UNWIND_HINT_IRET_REGS
	ENDBR
	pushq	$-1			/* pt_regs->orig_ax */
	KMOD_PUSH_REGS
	mov	%rsp, %rdi
	call	kmod_c_helper
	KMOD_POP_REGS
	UNWIND_HINT_IRET_REGS offset=8
	addq	$8, %rsp		/* drop orig_ax */
	UNWIND_HINT_IRET_REGS
	iretq
SYM_CODE_END(kmod_asm_irq_entry)

/* Thread-start shape: nothing to unwind to. */
SYM_CODE_START(kmod_asm_thread_start)
	UNWIND_HINT_END_OF_STACK
	ANNOTATE_NOENDBR
	call	kmod_c_helper
	ud2
SYM_CODE_END(kmod_asm_thread_start)

/* Stack switch: undefined until the new stack is set up. */
SYM_CODE_START(kmod_asm_stack_switch)
	UNWIND_HINT_UNDEFINED
	ANNOTATE_NOENDBR
	mov	%rdi, %rsp
	UNWIND_HINT_END_OF_STACK
	call	kmod_c_helper
	ud2
SYM_CODE_END(kmod_asm_stack_switch)

/* Code entered like a function but not through a symbol of type FUNC. */
SYM_CODE_START(kmod_asm_func_hint)
	UNWIND_HINT_FUNC
	ANNOTATE_NOENDBR
	push	%rbx
	mov	%rdi, %rbx
	call	kmod_c_helper
	pop	%rbx
	RET
SYM_CODE_END(kmod_asm_func_hint)

/* UNWIND_HINT_SAVE/RESTORE around an undefined region (vmware_hypercall
 * style): the state after RESTORE is the one recorded at SAVE. */
SYM_FUNC_START(kmod_asm_save_restore)
	UNWIND_HINT_SAVE
	push	%rbp
	UNWIND_HINT_UNDEFINED
	mov	%rdi, %rbp
	mov	$0x5658, %dx
	mov	%rsi, %rcx
	rep outsb
	pop	%rbp
	UNWIND_HINT_RESTORE
	RET
SYM_FUNC_END(kmod_asm_save_restore)

/* xen_hypercall_pv style SAVE/RESTORE around syscall. */
SYM_FUNC_START(kmod_asm_hypercall)
	push	%rcx
	push	%r11
	UNWIND_HINT_SAVE
	syscall
	UNWIND_HINT_RESTORE
	pop	%r11
	pop	%rcx
	RET
SYM_FUNC_END(kmod_asm_hypercall)

/* A faulting load with an _ASM_EXTABLE fixup inside the function. */
SYM_FUNC_START(kmod_asm_extable)
	push	%rbx
1:	mov	(%rdi), %rbx
	mov	%rbx, %rax
	pop	%rbx
	RET
2:	mov	$-14, %rax		/* -EFAULT */
	pop	%rbx
	RET
	_ASM_EXTABLE(1b, 2b)
SYM_FUNC_END(kmod_asm_extable)

/*
 * Jump label in asm.  6.12 has no asm macro any more (STATIC_JUMP_IF_TRUE
 * was removed in 5.x), so this is the old macro: a jmp.d32 (enabled by
 * default) plus a __jump_table entry {code, target, key}.
 */
.macro KMOD_STATIC_JUMP_IF_TRUE target, key, def
.Lstatic_jump_\@:
	.if \def
	.byte	0xe9			/* jmp.d32 \target */
	.long	\target - .Lstatic_jump_after_\@
.Lstatic_jump_after_\@:
	.else
	.byte	BYTES_NOP5
	.endif
	.pushsection __jump_table, "aw"
	_ASM_ALIGN
	.long	.Lstatic_jump_\@ - ., \target - .
	_ASM_PTR \key - .
	.popsection
.endm

SYM_FUNC_START(kmod_asm_jump_label)
	push	%rbx
	KMOD_STATIC_JUMP_IF_TRUE .Lslow, kmod_key, 1
	xor	%eax, %eax
	pop	%rbx
	RET
.Lslow:
	call	kmod_c_helper
	pop	%rbx
	RET
SYM_FUNC_END(kmod_asm_jump_label)
