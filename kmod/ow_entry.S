/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The work function of the current-task walk. It is entered by a call from process_one_work()
 * and tail-calls the C body with that call site's sp, x29 and return address, so the walk starts
 * exactly where vmlinux called into the module (the module has no ORC table of its own).
 */
#include <linux/linkage.h>

SYM_FUNC_START(ow_current_work)
	mov	x1, sp
	mov	x2, x29
	mov	x3, x30
	b	ow_current_work_body
SYM_FUNC_END(ow_current_work)
