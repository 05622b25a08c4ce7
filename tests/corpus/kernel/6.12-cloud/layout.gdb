/* offset      |    size */  type = struct pt_regs {
/*      0      |     272 */    union {
/*                   272 */        struct user_pt_regs {
/*      0      |     248 */            __u64 regs[31];
/*    248      |       8 */            __u64 sp;
/*    256      |       8 */            __u64 pc;
/*    264      |       8 */            __u64 pstate;

                                       /* total size (bytes):  272 */
                                   } user_regs;
/*                   272 */        struct {
/*      0      |     248 */            u64 regs[31];
/*    248      |       8 */            u64 sp;
/*    256      |       8 */            u64 pc;
/*    264      |       8 */            u64 pstate;

                                       /* total size (bytes):  272 */
                                   };

                                   /* total size (bytes):  272 */
                               };
/*    272      |       8 */    u64 orig_x0;
/*    280      |       4 */    s32 syscallno;
/*    284      |       4 */    u32 unused2;
/*    288      |       8 */    u64 sdei_ttbr1;
/*    296      |       8 */    u64 pmr_save;
/*    304      |      16 */    u64 stackframe[2];
/*    320      |       8 */    u64 lockdep_hardirqs;
/*    328      |       8 */    u64 exit_rcu;

                               /* total size (bytes):  336 */
                             }
/* offset      |    size */  type = struct cpu_context {
/*      0      |       8 */    unsigned long x19;
/*      8      |       8 */    unsigned long x20;
/*     16      |       8 */    unsigned long x21;
/*     24      |       8 */    unsigned long x22;
/*     32      |       8 */    unsigned long x23;
/*     40      |       8 */    unsigned long x24;
/*     48      |       8 */    unsigned long x25;
/*     56      |       8 */    unsigned long x26;
/*     64      |       8 */    unsigned long x27;
/*     72      |       8 */    unsigned long x28;
/*     80      |       8 */    unsigned long fp;
/*     88      |       8 */    unsigned long sp;
/*     96      |       8 */    unsigned long pc;

                               /* total size (bytes):  104 */
                             }
