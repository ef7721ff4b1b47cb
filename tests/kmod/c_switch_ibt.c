// SPDX-License-Identifier: GPL-2.0
/*
 * c_switch_ibt.c — c_switch.c again, with kbuild's -fcf-protection=branch
 * kept: the jump tables are reached through `notrack jmp *%rax`, which
 * objtool 6.12 reports while decoding ("notrack prefix found").
 */
#define KMOD_SW(name) name##_ibt
#include "c_switch.c"
