// SPDX-License-Identifier: GPL-2.0
/*
 * One comparison round:
 *  (a) every task not on a CPU, frozen the way livepatch freezes it (task_call_func), walked once
 *      by orcwalk and once by the kernel's stack_trace_save_tsk_reliable() on the same frozen
 *      stack; tasks stopped by an interrupt inside the kernel (a PT_REGS meta record in their
 *      frame-record chain) are counted apart as "preempted";
 *  (b) the task running on each other CPU, from an IPI, starting at the interrupt's pt_regs,
 *      where the kernel's reliable walker must refuse; orcwalk's frames are held against the
 *      kernel's frame-pointer walk from the same pt_regs (stack_trace_save_regs);
 *  (c) the current task, from a workqueue call into the module (ow_entry.S).
 * Rounds run one at a time (ow_main.c's lock), so the buffers are static.
 */
#include <linux/kernel.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/sched/task_stack.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/ktime.h>
#include <linux/delay.h>
#include <linux/workqueue.h>
#include <linux/uaccess.h>
#include <asm/irq_regs.h>
#include <asm/stacktrace.h>
#include <asm/stacktrace/frame.h>
#include <asm/pointer_auth.h>
#include "ow.h"

#define OW_MAX_TASKS	2048
#define OW_SHOW_DIFFS	8
#define OW_SHOW_REASON	3
#define OW_IPIS		8	/* IPIs to each other CPU per round */

/* Counts for one class of frozen task. */
struct ow_class {
	u64 tasks, agree, differ, kernel_only, orcwalk_only, neither;
	u64 reason_kernel_only[OW_NR_REASONS];	/* kernel reliable, orcwalk not: orcwalk's reason */
	u64 reason_neither[OW_NR_REASONS];
	u64 kernel_err_orcwalk_only[2];		/* [0] -EINVAL, [1] other */
};

struct ow_stats {
	u64 rounds, tasks_seen, on_cpu, no_stack;
	struct ow_class blocked, preempted;
	u64 kernel_ns, orcwalk_ns, timed;
	/* (b) */
	u64 ipi, ipi_user, ipi_idle, ipi_orcwalk_reliable, ipi_kernel_reliable;
	u64 ipi_fp_same, ipi_fp_plus_lr, ipi_fp_other;	/* orcwalk against the fp walk */
	u64 ipi_reason[OW_NR_REASONS];
	/* (c) */
	u64 cur, cur_agree, cur_differ, cur_orcwalk_unreliable, cur_kernel_unreliable;
	u64 cur_reason[OW_NR_REASONS];
};

static struct ow_stats total, now;

/* Where orcwalk refused, by reason and function: every refusal named, not only the first few. */
#define OW_WHERE	32
static struct ow_where {
	unsigned int reason;
	unsigned long func;
	u64 n;
} where[OW_WHERE];

static void count_where(const struct orcwalk_verdict *v)
{
	unsigned long size, offset, func = v->pc;
	int i;

	if (ow_k.size_offset(v->pc, &size, &offset))
		func = v->pc - offset;
	for (i = 0; i < OW_WHERE; i++) {
		if (!where[i].n)
			where[i] = (struct ow_where) { .reason = v->reason, .func = func };
		if (where[i].reason == v->reason && where[i].func == func) {
			where[i].n++;
			return;
		}
	}
}
static struct task_struct *tasks[OW_MAX_TASKS];
static unsigned long kbuf[OW_MAX_FRAMES], obuf[OW_MAX_FRAMES];
static unsigned int shown_diffs, shown_reason[OW_NR_REASONS];

struct ow_trace {
	unsigned long *pcs;
	unsigned int n;
};

static bool consume(void *cookie, unsigned long long pc)
{
	struct ow_trace *t = cookie;

	if (t->n >= OW_MAX_FRAMES)
		return false;
	t->pcs[t->n++] = pc;
	return true;
}

static unsigned int reason_slot(unsigned int reason)
{
	return reason < OW_NR_REASONS ? reason : OW_NR_REASONS - 1;
}

static void show_trace(const char *who, const unsigned long *pcs, int n)
{
	int i;

	pr_info("orcwalk:   %s (%d frames)\n", who, n);
	for (i = 0; i < n; i++)
		pr_info("orcwalk:     %pS\n", (void *)pcs[i]);
}

static bool show_reason(const char *what, struct task_struct *p, const struct orcwalk_verdict *v)
{
	unsigned int r = reason_slot(v->reason);

	count_where(v);
	if (shown_reason[r]++ >= OW_SHOW_REASON)
		return false;
	pr_info("orcwalk: %s: %s[%d]: %s at %pS (fp %llx)\n", what, p->comm, p->pid,
		orcwalk_reason_name(v->reason), (void *)(unsigned long)v->pc, v->fp);
	return true;
}

/* A PT_REGS meta record in the task's frame-record chain: it was stopped by an interrupt in
 * the kernel. Follows x29 only (neither walker's verdict decides the class). */
static bool chain_has_pt_regs(unsigned long fp, unsigned long low, unsigned long high)
{
	int i;

	for (i = 0; i < OW_MAX_FRAMES && fp >= low && fp + 24 <= high && !(fp & 7); i++) {
		unsigned long rec[3];

		if (copy_from_kernel_nofault(rec, (void *)fp, sizeof(rec)))
			return false;
		if (!rec[0] && !rec[1])
			return rec[2] == FRAME_META_TYPE_PT_REGS;
		if (rec[0] <= fp)
			return false;
		fp = rec[0];
	}
	return false;
}

/* (a) ------------------------------------------------------------------------------------- */

struct frozen {
	int kn;				/* kernel: entries, or -errno */
	int on;				/* orcwalk: frames */
	int oret;
	struct orcwalk_verdict v;
	bool preempted, ran;
	u64 kernel_ns, orcwalk_ns;
};

static int frozen_walk(struct task_struct *p, void *arg)
{
	struct frozen *f = arg;
	struct orcwalk_context ctx = ow_base;
	struct ow_walk w = { .task = p };
	struct orcwalk_stack st;
	struct ow_trace t = { .pcs = obuf };
	unsigned long stack;
	u64 t0, t1, t2;

	if (p->on_cpu)
		return -EBUSY;
	stack = (unsigned long)try_get_task_stack(p);
	if (!stack)
		return -ESRCH;
	st = (struct orcwalk_stack) { .low = stack, .high = stack + THREAD_SIZE, .kind = ORCWALK_STACK_TASK };
	ctx.stacks = w.stacks = &st;
	ctx.nr_stacks = w.nr_stacks = 1;
	ctx.task_stack_only = 1;
	ctx.ctx = &w;
	ctx.pc = p->thread.cpu_context.pc;
	ctx.sp = p->thread.cpu_context.sp;
	ctx.fp = p->thread.cpu_context.fp;
	f->preempted = chain_has_pt_regs(ctx.fp, st.low, st.high);

	t0 = ktime_get_ns();
	f->kn = ow_k.save_reliable(p, kbuf, OW_MAX_FRAMES);
	t1 = ktime_get_ns();
	f->oret = orcwalk_stack_walk_reliable(consume, &t, &ctx, &f->v);
	t2 = ktime_get_ns();
	f->on = t.n;
	f->kernel_ns = t1 - t0;
	f->orcwalk_ns = t2 - t1;
	f->ran = true;
	ow_k.put_stack(p);
	return 0;
}

static void count_frozen(struct task_struct *p, struct frozen *f)
{
	struct ow_class *c = f->preempted ? &now.preempted : &now.blocked;
	bool k = f->kn >= 0, o = f->oret == 0;

	c->tasks++;
	now.kernel_ns += f->kernel_ns;
	now.orcwalk_ns += f->orcwalk_ns;
	now.timed++;
	if (k && o) {
		if (f->kn == f->on && !memcmp(kbuf, obuf, f->on * sizeof(kbuf[0]))) {
			c->agree++;
			return;
		}
		c->differ++;
		if (shown_diffs++ < OW_SHOW_DIFFS) {
			pr_warn("orcwalk: both reliable, different frames: %s[%d]\n", p->comm, p->pid);
			show_trace("kernel", kbuf, f->kn);
			show_trace("orcwalk", obuf, f->on);
		}
	} else if (k) {
		c->kernel_only++;
		c->reason_kernel_only[reason_slot(f->v.reason)]++;
		if (show_reason("kernel reliable, orcwalk not", p, &f->v))
			show_trace("kernel", kbuf, f->kn);
	} else if (o) {
		c->orcwalk_only++;
		c->kernel_err_orcwalk_only[f->kn == -EINVAL ? 0 : 1]++;
	} else {
		c->neither++;
		c->reason_neither[reason_slot(f->v.reason)]++;
		count_where(&f->v);
	}
}

static void walk_frozen(void)
{
	struct task_struct *g, *p;
	unsigned int n = 0, i;

	rcu_read_lock();
	for_each_process_thread(g, p) {
		if (p == current || n == OW_MAX_TASKS || ow_is_waker(p))
			continue;
		get_task_struct(p);
		tasks[n++] = p;
	}
	rcu_read_unlock();

	for (i = 0; i < n; i++) {
		struct frozen f = {};
		int ret;

		now.tasks_seen++;
		ret = ow_k.call_func(tasks[i], frozen_walk, &f);
		if (ret == -EBUSY)
			now.on_cpu++;
		else if (!f.ran)
			now.no_stack++;
		else
			count_frozen(tasks[i], &f);
		put_task_struct(tasks[i]);
		cond_resched();
	}
}

/* (b) ------------------------------------------------------------------------------------- */

static unsigned long ibuf[OW_MAX_FRAMES], fbuf[OW_MAX_FRAMES];

struct ipi_job {
	bool user, waker, idle, kernel_reliable;
	int oret, on, fn;
	unsigned long x30;
	struct orcwalk_verdict v;
	char comm[TASK_COMM_LEN];
};

static void ipi_walk(void *arg)
{
	struct ipi_job *j = arg;
	struct pt_regs *regs = get_irq_regs();
	struct orcwalk_context ctx = ow_base;
	struct orcwalk_stack st[3];
	struct ow_walk w = { .task = current };
	struct ow_trace t = { .pcs = ibuf };
	unsigned long task = (unsigned long)task_stack_page(current);
	unsigned long irq = (unsigned long)*per_cpu_ptr((unsigned long **)ow_k.irq_stack_ptr, smp_processor_id());
	unsigned long ovf = (unsigned long)per_cpu_ptr((void *)ow_k.overflow_stack, smp_processor_id());

	if (!regs || user_mode(regs)) {
		j->user = true;
		return;
	}
	if (ow_is_waker(current)) {
		j->waker = true;
		return;
	}
	j->idle = is_idle_task(current);
	get_task_comm(j->comm, current);
	st[0] = (struct orcwalk_stack) { .low = task, .high = task + THREAD_SIZE, .kind = ORCWALK_STACK_TASK };
	st[1] = (struct orcwalk_stack) { .low = irq, .high = irq + IRQ_STACK_SIZE, .kind = ORCWALK_STACK_IRQ };
	st[2] = (struct orcwalk_stack) { .low = ovf, .high = ovf + OVERFLOW_STACK_SIZE,
					 .kind = ORCWALK_STACK_OVERFLOW };
	ctx.stacks = w.stacks = st;
	ctx.nr_stacks = w.nr_stacks = 3;
	ctx.ctx = &w;
	ctx.start_regs = 1;
	ctx.pc = regs->pc;
	ctx.sp = regs->sp;
	ctx.fp = regs->regs[29];
	ctx.lr = regs->regs[30];
	j->x30 = ptrauth_strip_kernel_insn_pac(regs->regs[30]);
	j->oret = orcwalk_stack_walk_reliable(consume, &t, &ctx, &j->v);
	j->on = t.n;
	j->kernel_reliable = ow_k.save_reliable(current, kbuf, OW_MAX_FRAMES) >= 0;
	j->fn = ow_k.save_regs(regs, fbuf, OW_MAX_FRAMES, 0);
}

static bool in_entry_text(unsigned long pc)
{
	return pc >= ow_k.entry_start && pc < ow_k.entry_end;
}

/*
 * The frame-pointer walk misses an interrupted function's caller while its return address is
 * only in x30 (a leaf such as __arch_clear_user, a prologue, an epilogue), at the start and at
 * every exception it crosses. orcwalk's frames must then be the fp walk's with such callers
 * added: each extra frame right after an interrupted pc (frame 0, or the frame after a return
 * into entry text).
 */
static bool fp_walk_plus_x30_callers(const unsigned long *fp, int fn, const unsigned long *ow, int on)
{
	int i = 0, k = 0;

	while (i < on) {
		if (k < fn && ow[i] == fp[k]) {
			i++;
			k++;
		} else if (i == 1 || (i >= 2 && in_entry_text(ow[i - 2]))) {
			i++;	/* the interrupted function's caller, found through x30 */
		} else {
			return false;
		}
	}
	return k == fn;
}

static void walk_running(void)
{
	int cpu, me = get_cpu(), k;

	put_cpu();
	for (k = 0; k < OW_IPIS; k++, usleep_range(500, 1000)) for_each_online_cpu(cpu) {
		struct ipi_job j = {};

		if (cpu == me)
			continue;
		if (smp_call_function_single(cpu, ipi_walk, &j, 1))
			continue;
		if (j.waker)
			continue;
		now.ipi++;
		if (j.user) {
			now.ipi_user++;
			continue;
		}
		now.ipi_idle += j.idle;
		now.ipi_kernel_reliable += j.kernel_reliable;
		if (j.oret) {
			now.ipi_reason[reason_slot(j.v.reason)]++;
			count_where(&j.v);
			if (shown_reason[reason_slot(j.v.reason)]++ < OW_SHOW_REASON)
				pr_info("orcwalk: running %s: %s at %pS\n", j.comm,
					orcwalk_reason_name(j.v.reason), (void *)(unsigned long)j.v.pc);
			continue;
		}
		now.ipi_orcwalk_reliable++;
		if (j.fn == j.on && !memcmp(fbuf, ibuf, j.on * sizeof(ibuf[0])))
			now.ipi_fp_same++;
		else if (fp_walk_plus_x30_callers(fbuf, j.fn, ibuf, j.on))
			now.ipi_fp_plus_lr++;
		else {
			now.ipi_fp_other++;
			if (shown_diffs++ < OW_SHOW_DIFFS) {
				pr_warn("orcwalk: running %s: orcwalk reliable, frames differ from the fp walk\n",
					j.comm);
				show_trace("fp walk", fbuf, j.fn);
				show_trace("orcwalk", ibuf, j.on);
			}
		}
	}
}

/* (c) ------------------------------------------------------------------------------------- */

void ow_current_work(struct work_struct *w);
void ow_current_work_body(struct work_struct *work, unsigned long sp, unsigned long fp,
			  unsigned long lr);

static struct {
	int kn, on, oret;
	unsigned long lr;
	struct orcwalk_verdict v;
} cur;

void ow_current_work_body(struct work_struct *work, unsigned long sp, unsigned long fp,
			  unsigned long lr)
{
	struct orcwalk_context ctx = ow_base;
	unsigned long task = (unsigned long)task_stack_page(current);
	struct orcwalk_stack st = { .low = task, .high = task + THREAD_SIZE, .kind = ORCWALK_STACK_TASK };
	struct ow_trace t = { .pcs = obuf };
	struct ow_walk w = { .task = current };

	ctx.stacks = w.stacks = &st;
	ctx.nr_stacks = w.nr_stacks = 1;
	ctx.ctx = &w;
	ctx.pc = lr;
	ctx.sp = sp;
	ctx.fp = fp;
	cur.oret = orcwalk_stack_walk_reliable(consume, &t, &ctx, &cur.v);
	cur.on = t.n;
	cur.lr = ptrauth_strip_kernel_insn_pac(lr);
	cur.kn = ow_k.save_reliable(current, kbuf, OW_MAX_FRAMES);
}

static void walk_current(void)
{
	struct work_struct w;
	int i;

	INIT_WORK_ONSTACK(&w, ow_current_work);
	schedule_work(&w);
	flush_work(&w);
	destroy_work_on_stack(&w);
	now.cur++;
	if (cur.oret) {
		count_where(&cur.v);
		now.cur_orcwalk_unreliable++;
		now.cur_reason[reason_slot(cur.v.reason)]++;
	}
	if (cur.kn < 0)
		now.cur_kernel_unreliable++;
	if (cur.oret || cur.kn < 0)
		return;
	/* The kernel's walk starts in the module: compare from the call into the module on. */
	for (i = 0; i < cur.kn && kbuf[i] != cur.lr; i++)
		;
	if (cur.kn - i == cur.on && !memcmp(kbuf + i, obuf, cur.on * sizeof(obuf[0]))) {
		now.cur_agree++;
	} else {
		now.cur_differ++;
		if (shown_diffs++ < OW_SHOW_DIFFS) {
			pr_warn("orcwalk: current task: both reliable, different frames\n");
			show_trace("kernel", kbuf, cur.kn);
			show_trace("orcwalk", obuf, cur.on);
		}
	}
}

/* Reporting ------------------------------------------------------------------------------- */

static void add(u64 *to, const u64 *from, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		to[i] += from[i];
}

static void show_reasons(struct seq_file *m, const char *key, const u64 *r)
{
	unsigned int i;

	for (i = 0; i < OW_NR_REASONS; i++)
		if (r[i])
			seq_printf(m, "  %s %llu %s\n", key, r[i], orcwalk_reason_name(i));
}

static void show_class(struct seq_file *m, const char *name, const struct ow_class *c)
{
	seq_printf(m, " %s tasks=%llu agree=%llu differ=%llu kernel_only=%llu orcwalk_only=%llu neither=%llu orcwalk_only_einval=%llu orcwalk_only_other=%llu\n",
		   name, c->tasks, c->agree, c->differ, c->kernel_only, c->orcwalk_only, c->neither,
		   c->kernel_err_orcwalk_only[0], c->kernel_err_orcwalk_only[1]);
	show_reasons(m, "kernel_only_reason", c->reason_kernel_only);
	show_reasons(m, "neither_reason", c->reason_neither);
}

static void show(struct seq_file *m, const char *what, const struct ow_stats *s)
{
	seq_printf(m, "OW %s rounds=%llu tasks_seen=%llu on_cpu=%llu no_stack=%llu kernel_ns=%llu orcwalk_ns=%llu timed=%llu\n",
		   what, s->rounds, s->tasks_seen, s->on_cpu, s->no_stack, s->kernel_ns, s->orcwalk_ns, s->timed);
	show_class(m, "blocked", &s->blocked);
	show_class(m, "preempted", &s->preempted);
	seq_printf(m, " running ipi=%llu user=%llu idle=%llu orcwalk_reliable=%llu kernel_reliable=%llu fp_same=%llu fp_plus_lr=%llu fp_other=%llu\n",
		   s->ipi, s->ipi_user, s->ipi_idle, s->ipi_orcwalk_reliable, s->ipi_kernel_reliable,
		   s->ipi_fp_same, s->ipi_fp_plus_lr, s->ipi_fp_other);
	show_reasons(m, "running_reason", s->ipi_reason);
	seq_printf(m, " current walks=%llu agree=%llu differ=%llu orcwalk_unreliable=%llu kernel_unreliable=%llu\n",
		   s->cur, s->cur_agree, s->cur_differ, s->cur_orcwalk_unreliable, s->cur_kernel_unreliable);
	show_reasons(m, "current_reason", s->cur_reason);
}

int ow_round(struct seq_file *m)
{
	memset(&now, 0, sizeof(now));
	now.rounds = 1;
	walk_frozen();
	walk_running();
	walk_current();

	/* Every counter, whatever its place: the stats are u64s through and through. */
	static_assert(sizeof(now) % sizeof(u64) == 0);
	add((u64 *)&total, (const u64 *)&now, sizeof(now) / sizeof(u64));
	show(m, "round", &now);
	return 0;
}

void ow_total(struct seq_file *m)
{
	int i;

	show(m, "total", &total);
	for (i = 0; i < OW_WHERE && where[i].n; i++)
		seq_printf(m, " where n=%llu at=%ps reason=%s\n", where[i].n, (void *)where[i].func,
			   orcwalk_reason_name(where[i].reason));
}

void ow_reset(void)
{
	memset(&total, 0, sizeof(total));
	memset(where, 0, sizeof(where));
}
