// Writes data/synthetic-vultrial.jsonl and prompts/few-shot-examples.jsonl: invented C functions in the VulTrial
// (PrimeVul) row schema, for tests and the sandbox demo. Deterministic: rerunning produces identical bytes.
// Usage: npx tsx scripts/make-synthetic-dataset.ts [--check]   (--check fails if the files on disk differ)
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface Fn {
  name: string;
  code: string;
}

interface Case {
  project: string;
  fileName: string;
  cwe: string;
  /** What the fixing commit says; also the CVE description's gist. */
  summary: string;
  cveDesc: string;
  vulnerable?: Fn;
  fixed?: Fn;
}

interface FewShot {
  target: 0 | 1;
  project: string;
  fileName: string;
  cwe: string;
  summary: string;
  cveDesc: string;
  fn: Fn;
  explanation: string;
}

// 16 vulnerable/fixed pairs from the same commit, as PrimeVul pairs them.
const PAIRS: Case[] = [
  {
    project: 'netconfd',
    fileName: 'conn.c',
    cwe: 'CWE-787',
    summary: 'conn: bound the peer hostname copy in conn_set_hostname',
    cveDesc:
      'A stack-based buffer overflow in conn_set_hostname in conn.c in netconfd before 2.3.2 allows remote peers to execute code via a hostname longer than 63 bytes.',
    vulnerable: {
      name: 'conn_set_hostname',
      code: `int conn_set_hostname(struct conn *c, const char *name)
{
	char buf[64];

	if (!c || !name)
		return -EINVAL;
	strcpy(buf, name);
	str_tolower(buf);
	c->hostname = strdup(buf);
	return c->hostname ? 0 : -ENOMEM;
}`,
    },
    fixed: {
      name: 'conn_set_hostname',
      code: `int conn_set_hostname(struct conn *c, const char *name)
{
	char buf[64];
	size_t len;

	if (!c || !name)
		return -EINVAL;
	len = strlen(name);
	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, name, len + 1);
	str_tolower(buf);
	c->hostname = strdup(buf);
	return c->hostname ? 0 : -ENOMEM;
}`,
    },
  },
  {
    project: 'pktdump',
    fileName: 'tlv.c',
    cwe: 'CWE-120',
    summary: 'tlv: validate the value length against the packet and the destination',
    cveDesc:
      'parse_tlv in tlv.c in pktdump 0.9.x copies a length taken from the packet into a 64-byte buffer without validation, allowing a heap overflow via a crafted capture file.',
    vulnerable: {
      name: 'parse_tlv',
      code: `static int parse_tlv(const uint8_t *pkt, size_t pkt_len, struct tlv *out)
{
	uint8_t len;

	if (pkt_len < 2)
		return -1;
	out->type = pkt[0];
	len = pkt[1];
	memcpy(out->value, pkt + 2, len);
	out->len = len;
	return 2 + len;
}`,
    },
    fixed: {
      name: 'parse_tlv',
      code: `static int parse_tlv(const uint8_t *pkt, size_t pkt_len, struct tlv *out)
{
	uint8_t len;

	if (pkt_len < 2)
		return -1;
	out->type = pkt[0];
	len = pkt[1];
	if (len > sizeof(out->value) || (size_t)len + 2 > pkt_len)
		return -1;
	memcpy(out->value, pkt + 2, len);
	out->len = len;
	return 2 + len;
}`,
    },
  },
  {
    project: 'mdparse',
    fileName: 'label.c',
    cwe: 'CWE-193',
    summary: 'label: fix off-by-one when copying link labels',
    cveDesc:
      'An off-by-one error in copy_label in label.c in mdparse 1.4.0 writes one byte past the destination buffer when a link label fills it exactly.',
    vulnerable: {
      name: 'copy_label',
      code: `size_t copy_label(char *dst, size_t dst_size, const char *src)
{
	size_t i;

	for (i = 0; i <= dst_size && src[i] != ']'; i++)
		dst[i] = src[i];
	dst[i] = '\\0';
	return i;
}`,
    },
    fixed: {
      name: 'copy_label',
      code: `size_t copy_label(char *dst, size_t dst_size, const char *src)
{
	size_t i;

	if (dst_size == 0)
		return 0;
	for (i = 0; i + 1 < dst_size && src[i] != '\\0' && src[i] != ']'; i++)
		dst[i] = src[i];
	dst[i] = '\\0';
	return i;
}`,
    },
  },
  {
    project: 'httpd-lite',
    fileName: 'status.c',
    cwe: 'CWE-787',
    summary: 'status: use snprintf for the status line',
    cveDesc:
      'format_status in status.c in httpd-lite before 0.7.3 uses sprintf with a client-controlled reason phrase, allowing a stack buffer overflow.',
    vulnerable: {
      name: 'format_status',
      code: `static void format_status(struct response *res, int code, const char *reason)
{
	char line[128];

	sprintf(line, "HTTP/1.1 %d %s\\r\\n", code, reason);
	response_append(res, line, strlen(line));
}`,
    },
    fixed: {
      name: 'format_status',
      code: `static void format_status(struct response *res, int code, const char *reason)
{
	char line[128];
	int n;

	n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\\r\\n", code, reason);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = snprintf(line, sizeof(line), "HTTP/1.1 %d\\r\\n", code);
	response_append(res, line, (size_t)n);
}`,
    },
  },
  {
    project: 'tinyimg',
    fileName: 'image.c',
    cwe: 'CWE-190',
    summary: 'image: check for overflow in the pixel buffer size',
    cveDesc:
      'An integer overflow in image_alloc in image.c in tinyimg 3.1 allows a crafted header with large width and height to cause a small allocation followed by a heap overflow.',
    vulnerable: {
      name: 'image_alloc',
      code: `struct image *image_alloc(uint32_t width, uint32_t height, uint32_t channels)
{
	struct image *img = calloc(1, sizeof(*img));

	if (!img)
		return NULL;
	img->width = width;
	img->height = height;
	img->channels = channels;
	img->pixels = malloc(width * height * channels);
	if (!img->pixels) {
		free(img);
		return NULL;
	}
	return img;
}`,
    },
    fixed: {
      name: 'image_alloc',
      code: `struct image *image_alloc(uint32_t width, uint32_t height, uint32_t channels)
{
	struct image *img;
	size_t size;

	if (channels == 0 || channels > 4 || width == 0 || height == 0)
		return NULL;
	if ((size_t)width > SIZE_MAX / height || (size_t)width * height > SIZE_MAX / channels)
		return NULL;
	size = (size_t)width * height * channels;
	img = calloc(1, sizeof(*img));
	if (!img)
		return NULL;
	img->width = width;
	img->height = height;
	img->channels = channels;
	img->pixels = malloc(size);
	if (!img->pixels) {
		free(img);
		return NULL;
	}
	return img;
}`,
    },
  },
  {
    project: 'evloop',
    fileName: 'timer.c',
    cwe: 'CWE-416',
    summary: 'timer: read the next pointer before freeing an expired timer',
    cveDesc:
      'A use-after-free in timers_expire in timer.c in evloop 2.0.1 dereferences a freed timer node while walking the expiry list.',
    vulnerable: {
      name: 'timers_expire',
      code: `void timers_expire(struct loop *loop, uint64_t now)
{
	struct timer *t;

	for (t = loop->timers; t != NULL; t = t->next) {
		if (t->deadline > now)
			break;
		loop->timers = t->next;
		t->cb(t->arg);
		free(t);
	}
}`,
    },
    fixed: {
      name: 'timers_expire',
      code: `void timers_expire(struct loop *loop, uint64_t now)
{
	struct timer *t, *next;

	for (t = loop->timers; t != NULL; t = next) {
		next = t->next;
		if (t->deadline > now)
			break;
		loop->timers = next;
		t->cb(t->arg);
		free(t);
	}
}`,
    },
  },
  {
    project: 'fontkit-c',
    fileName: 'sfnt.c',
    cwe: 'CWE-125',
    summary: 'sfnt: bounds-check table reads',
    cveDesc:
      'read_u16 in sfnt.c in fontkit-c before 1.2 reads past the end of the font buffer when a table offset points at its last byte.',
    vulnerable: {
      name: 'sfnt_read_u16',
      code: `static uint16_t sfnt_read_u16(const struct sfnt *f, size_t off)
{
	const uint8_t *p = f->data + off;

	return (uint16_t)(p[0] << 8 | p[1]);
}`,
    },
    fixed: {
      name: 'sfnt_read_u16',
      code: `static int sfnt_read_u16(const struct sfnt *f, size_t off, uint16_t *out)
{
	const uint8_t *p;

	if (off > f->size || f->size - off < 2)
		return -1;
	p = f->data + off;
	*out = (uint16_t)(p[0] << 8 | p[1]);
	return 0;
}`,
    },
  },
  {
    project: 'confparse',
    fileName: 'config.c',
    cwe: 'CWE-476',
    summary: 'config: handle missing keys in config_get_int',
    cveDesc:
      'config_get_int in config.c in confparse 0.3 dereferences a NULL pointer when the requested key is absent, allowing a crafted file to crash the daemon.',
    vulnerable: {
      name: 'config_get_int',
      code: `int config_get_int(const struct config *cfg, const char *key, int fallback)
{
	const struct config_entry *e = config_find(cfg, key);

	(void)fallback;
	return (int)strtol(e->value, NULL, 10);
}`,
    },
    fixed: {
      name: 'config_get_int',
      code: `int config_get_int(const struct config *cfg, const char *key, int fallback)
{
	const struct config_entry *e = config_find(cfg, key);
	char *end;
	long v;

	if (e == NULL || e->value == NULL)
		return fallback;
	errno = 0;
	v = strtol(e->value, &end, 10);
	if (errno != 0 || *end != '\\0' || v < INT_MIN || v > INT_MAX)
		return fallback;
	return (int)v;
}`,
    },
  },
  {
    project: 'jsonlite',
    fileName: 'parser.c',
    cwe: 'CWE-415',
    summary: 'parser: clear the token array after freeing it on error',
    cveDesc:
      'A double free in parser_reset in parser.c in jsonlite 1.0.4 occurs when a parse error is followed by parser_destroy.',
    vulnerable: {
      name: 'parser_reset',
      code: `void parser_reset(struct parser *p, int failed)
{
	if (failed) {
		free(p->tokens);
		p->ntokens = 0;
	}
	p->pos = 0;
	p->depth = 0;
}`,
    },
    fixed: {
      name: 'parser_reset',
      code: `void parser_reset(struct parser *p, int failed)
{
	if (failed) {
		free(p->tokens);
		p->tokens = NULL;
		p->ntokens = 0;
		p->cap = 0;
	}
	p->pos = 0;
	p->depth = 0;
}`,
    },
  },
  {
    project: 'audiomix',
    fileName: 'mixer.c',
    cwe: 'CWE-787',
    summary: 'mixer: reject negative channel numbers',
    cveDesc:
      'mixer_set_gain in mixer.c in audiomix 0.5 accepts a negative channel index from a control message, leading to an out-of-bounds write.',
    vulnerable: {
      name: 'mixer_set_gain',
      code: `int mixer_set_gain(struct mixer *m, int channel, int gain_db)
{
	if (channel >= MIXER_MAX_CHANNELS)
		return -1;
	if (gain_db < -60 || gain_db > 12)
		return -1;
	m->gain[channel] = gain_db;
	m->dirty = 1;
	return 0;
}`,
    },
    fixed: {
      name: 'mixer_set_gain',
      code: `int mixer_set_gain(struct mixer *m, int channel, int gain_db)
{
	if (channel < 0 || channel >= MIXER_MAX_CHANNELS)
		return -1;
	if (gain_db < -60 || gain_db > 12)
		return -1;
	m->gain[channel] = gain_db;
	m->dirty = 1;
	return 0;
}`,
    },
  },
  {
    project: 'strkit',
    fileName: 'concat.c',
    cwe: 'CWE-131',
    summary: 'concat: allocate room for the terminator',
    cveDesc:
      'str_concat in concat.c in strkit before 0.2.1 allocates one byte too few, so every call writes the NUL terminator past the heap allocation.',
    vulnerable: {
      name: 'str_concat',
      code: `char *str_concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *r = malloc(la + lb);

	if (!r)
		return NULL;
	memcpy(r, a, la);
	memcpy(r + la, b, lb);
	r[la + lb] = '\\0';
	return r;
}`,
    },
    fixed: {
      name: 'str_concat',
      code: `char *str_concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *r;

	if (la > SIZE_MAX - lb - 1)
		return NULL;
	r = malloc(la + lb + 1);
	if (!r)
		return NULL;
	memcpy(r, a, la);
	memcpy(r + la, b, lb);
	r[la + lb] = '\\0';
	return r;
}`,
    },
  },
  {
    project: 'fileshare',
    fileName: 'upload.c',
    cwe: 'CWE-22',
    summary: 'upload: refuse file names with path separators',
    cveDesc:
      'open_upload in upload.c in fileshare 1.1 builds the destination path from a client-supplied name without rejecting "..", allowing files to be written outside the upload directory.',
    vulnerable: {
      name: 'open_upload',
      code: `int open_upload(const char *dir, const char *name)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -1;
	return open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
}`,
    },
    fixed: {
      name: 'open_upload',
      code: `int open_upload(const char *dir, const char *name)
{
	char path[PATH_MAX];

	if (name[0] == '\\0' || name[0] == '.' || strchr(name, '/') != NULL || strchr(name, '\\\\') != NULL)
		return -1;
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -1;
	return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
}`,
    },
  },
  {
    project: 'netdiag',
    fileName: 'probe.c',
    cwe: 'CWE-78',
    summary: 'probe: run ping without a shell',
    cveDesc:
      'probe_host in probe.c in netdiag 0.4 passes a user-supplied host name to system(), allowing command injection through shell metacharacters.',
    vulnerable: {
      name: 'probe_host',
      code: `int probe_host(const char *host)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "ping -c 1 -W 2 %s > /dev/null", host);
	return system(cmd) == 0;
}`,
    },
    fixed: {
      name: 'probe_host',
      code: `int probe_host(const char *host)
{
	pid_t pid;
	int status;

	if (!valid_hostname(host))
		return 0;
	pid = fork();
	if (pid < 0)
		return 0;
	if (pid == 0) {
		execlp("ping", "ping", "-c", "1", "-W", "2", "--", host, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return 0;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}`,
    },
  },
  {
    project: 'cryptoutil',
    fileName: 'hex',
    cwe: 'CWE-787',
    summary: 'hex: respect the output size in hex_decode',
    cveDesc:
      'hex_decode in cryptoutil 2.2 writes decoded bytes without checking the output buffer size, allowing a long hex string to overflow it.',
    vulnerable: {
      name: 'hex_decode',
      code: `int hex_decode(const char *in, uint8_t *out, size_t out_len)
{
	size_t i, n = strlen(in) / 2;

	(void)out_len;
	for (i = 0; i < n; i++) {
		int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (int)n;
}`,
    },
    fixed: {
      name: 'hex_decode',
      code: `int hex_decode(const char *in, uint8_t *out, size_t out_len)
{
	size_t i, len = strlen(in), n = len / 2;

	if (len % 2 != 0 || n > out_len || n > INT_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (int)n;
}`,
    },
  },
  {
    project: 'ringbuf',
    fileName: 'ring.c',
    cwe: 'CWE-190',
    summary: 'ring: avoid wraparound in the free-space check',
    cveDesc:
      'ring_push in ring.c in ringbuf 1.0 computes used + n without overflow checking, so a huge length passes the capacity check and overflows the buffer.',
    vulnerable: {
      name: 'ring_push',
      code: `int ring_push(struct ring *r, const uint8_t *data, size_t n)
{
	size_t i;

	if (r->used + n > r->cap)
		return -1;
	for (i = 0; i < n; i++)
		r->buf[(r->head + r->used + i) % r->cap] = data[i];
	r->used += n;
	return 0;
}`,
    },
    fixed: {
      name: 'ring_push',
      code: `int ring_push(struct ring *r, const uint8_t *data, size_t n)
{
	size_t i;

	if (n > r->cap - r->used)
		return -1;
	for (i = 0; i < n; i++)
		r->buf[(r->head + r->used + i) % r->cap] = data[i];
	r->used += n;
	return 0;
}`,
    },
  },
  {
    project: 'kvcache',
    fileName: 'evict',
    cwe: 'CWE-416',
    summary: 'evict: account the size before freeing the entry',
    cveDesc:
      'cache_evict in kvcache 0.8 reads the size of an entry after freeing it, a use-after-free that can leak heap contents into statistics.',
    vulnerable: {
      name: 'cache_evict',
      code: `void cache_evict(struct cache *c, struct entry *e)
{
	list_del(&e->lru);
	hash_remove(&c->index, e->key);
	free(e->value);
	free(e);
	c->bytes -= e->size;
	c->evictions++;
}`,
    },
    fixed: {
      name: 'cache_evict',
      code: `void cache_evict(struct cache *c, struct entry *e)
{
	size_t size = e->size;

	list_del(&e->lru);
	hash_remove(&c->index, e->key);
	free(e->value);
	free(e);
	c->bytes -= size;
	c->evictions++;
}`,
    },
  },
];

// Functions whose pair partner is not in the set: 8 vulnerable, 8 benign.
const SINGLES: Case[] = [
  {
    project: 'shellkit',
    fileName: 'repl.c',
    cwe: 'CWE-242',
    summary: 'repl: replace gets with fgets',
    cveDesc:
      'repl_read_command in repl.c in shellkit 0.1 uses gets(), allowing a stack overflow via a long input line.',
    vulnerable: {
      name: 'repl_read_command',
      code: `int repl_read_command(struct repl *r)
{
	char line[80];

	printf("%s> ", r->prompt);
	fflush(stdout);
	if (gets(line) == NULL)
		return -1;
	return repl_dispatch(r, line);
}`,
    },
  },
  {
    project: 'authd',
    fileName: 'log.c',
    cwe: 'CWE-134',
    summary: 'log: do not pass user text as the format string',
    cveDesc:
      'log_login_failure in log.c in authd 1.3 passes the supplied user name to syslog as a format string, allowing memory disclosure or writes.',
    vulnerable: {
      name: 'log_login_failure',
      code: `void log_login_failure(const char *user, const char *remote)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "login failed for %s from %s", user, remote);
	syslog(LOG_WARNING, msg);
}`,
    },
  },
  {
    project: 'numlib',
    fileName: 'matrix.c',
    cwe: 'CWE-190',
    summary: 'matrix: check rows * cols for overflow',
    cveDesc:
      'matrix_new in matrix.c in numlib 0.9 multiplies signed dimensions without overflow checks, so large inputs allocate a small buffer that is then overrun.',
    vulnerable: {
      name: 'matrix_new',
      code: `struct matrix *matrix_new(int rows, int cols)
{
	struct matrix *m = malloc(sizeof(*m));

	if (!m)
		return NULL;
	m->rows = rows;
	m->cols = cols;
	m->data = malloc(rows * cols * sizeof(double));
	if (!m->data) {
		free(m);
		return NULL;
	}
	memset(m->data, 0, (size_t)rows * cols * sizeof(double));
	return m;
}`,
    },
  },
  {
    project: 'vmtool',
    fileName: 'disasm.c',
    cwe: 'CWE-125',
    summary: 'disasm: bounds-check the opcode table lookup',
    cveDesc:
      'opcode_name in disasm.c in vmtool 0.2 indexes a 32-entry table with an 8-bit opcode from the input, reading out of bounds.',
    vulnerable: {
      name: 'opcode_name',
      code: `static const char *const opcode_names[32] = {
	"nop", "load", "store", "add", "sub", "mul", "div", "jmp",
	"jz", "jnz", "call", "ret", "push", "pop", "cmp", "halt",
};

const char *opcode_name(uint8_t op)
{
	const char *name = opcode_names[op];

	return name ? name : "???";
}`,
    },
  },
  {
    project: 'webutil',
    fileName: 'urldecode.c',
    cwe: 'CWE-787',
    summary: 'urldecode: take the destination size',
    cveDesc:
      'url_decode in urldecode.c in webutil 1.0 decodes into a caller buffer without a size, allowing an overflow with a long query string.',
    vulnerable: {
      name: 'url_decode',
      code: `void url_decode(char *dst, const char *src)
{
	while (*src) {
		if (src[0] == '%' && isxdigit((unsigned char)src[1]) && isxdigit((unsigned char)src[2])) {
			*dst++ = (char)(hexval(src[1]) << 4 | hexval(src[2]));
			src += 3;
		} else if (*src == '+') {
			*dst++ = ' ';
			src++;
		} else {
			*dst++ = *src++;
		}
	}
	*dst = '\\0';
}`,
    },
  },
  {
    project: 'bufpool',
    fileName: 'pool',
    cwe: 'CWE-416',
    summary: 'pool: test the flags before releasing the buffer',
    cveDesc: 'pool_release in bufpool 0.6 reads the flags of a buffer descriptor after it has been freed.',
    vulnerable: {
      name: 'pool_release',
      code: `void pool_release(struct pool *p, struct pbuf *b)
{
	free(b->data);
	free(b);
	if (b->flags & PBUF_COUNTED)
		p->live--;
}`,
    },
  },
  {
    project: 'pathutil',
    fileName: 'join.c',
    cwe: 'CWE-193',
    summary: 'join: count the separator when checking the size',
    cveDesc:
      'path_join in join.c in pathutil 0.3 forgets the separator in its size check, so a result of exactly out_size bytes overflows by one.',
    vulnerable: {
      name: 'path_join',
      code: `int path_join(char *out, size_t out_size, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la + lb + 1 > out_size)
		return -1;
	memcpy(out, a, la);
	out[la] = '/';
	memcpy(out + la + 1, b, lb);
	out[la + 1 + lb] = '\\0';
	return 0;
}`,
    },
  },
  {
    project: 'cliutil',
    fileName: 'args.c',
    cwe: 'CWE-787',
    summary: 'args: bound the joined command line',
    cveDesc:
      'join_args in args.c in cliutil 2.0 concatenates all arguments into a 256-byte stack buffer with strcat, allowing a stack overflow.',
    vulnerable: {
      name: 'join_args',
      code: `void join_args(int argc, char **argv, struct job *job)
{
	char buf[256];
	int i;

	buf[0] = '\\0';
	for (i = 1; i < argc; i++) {
		strcat(buf, argv[i]);
		if (i + 1 < argc)
			strcat(buf, " ");
	}
	job->cmdline = strdup(buf);
}`,
    },
  },
  {
    project: 'strkit',
    fileName: 'copy.c',
    cwe: 'CWE-787',
    summary: 'copy: add str_copy_bounded',
    cveDesc: 'strkit before 0.2.1 lacked a bounded copy helper; callers overflowed fixed buffers.',
    fixed: {
      name: 'str_copy_bounded',
      code: `size_t str_copy_bounded(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size != 0) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\\0';
	}
	return len;
}`,
    },
  },
  {
    project: 'pktdump',
    fileName: 'csum.c',
    cwe: 'CWE-125',
    summary: 'csum: handle odd lengths in checksum16',
    cveDesc: 'checksum16 in pktdump 0.9.x read one byte past the buffer for odd lengths.',
    fixed: {
      name: 'checksum16',
      code: `uint16_t checksum16(const uint8_t *data, size_t len)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)data[i] << 8 | data[i + 1];
	if (len & 1)
		sum += (uint32_t)data[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}`,
    },
  },
  {
    project: 'evloop',
    fileName: 'list.c',
    cwe: 'CWE-416',
    summary: 'list: free nodes safely',
    cveDesc: 'evloop 2.0.1 freed list nodes before reading their successor in several places.',
    fixed: {
      name: 'list_free_all',
      code: `void list_free_all(struct node *head, void (*free_value)(void *))
{
	struct node *next;

	while (head != NULL) {
		next = head->next;
		if (free_value)
			free_value(head->value);
		free(head);
		head = next;
	}
}`,
    },
  },
  {
    project: 'netconfd',
    fileName: 'port.c',
    cwe: 'CWE-20',
    summary: 'port: validate port numbers with strtol',
    cveDesc: 'netconfd before 2.3.2 used atoi for port numbers and accepted out-of-range values.',
    fixed: {
      name: 'parse_port',
      code: `int parse_port(const char *s, uint16_t *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\\0' || v < 1 || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}`,
    },
  },
  {
    project: 'bitset',
    fileName: 'bitmap.c',
    cwe: 'CWE-787',
    summary: 'bitmap: check the bit index',
    cveDesc: 'bitset 0.1 wrote outside the bitmap for bit indexes past its size.',
    fixed: {
      name: 'bitmap_set',
      code: `int bitmap_set(struct bitmap *bm, size_t bit)
{
	if (bit >= bm->nbits)
		return -1;
	bm->words[bit / BITS_PER_WORD] |= (word_t)1 << (bit % BITS_PER_WORD);
	return 0;
}`,
    },
  },
  {
    project: 'ioutil',
    fileName: 'io.c',
    cwe: 'CWE-252',
    summary: 'io: retry short reads and EINTR',
    cveDesc: 'ioutil 1.2 ignored short reads, leaving parts of fixed-size records uninitialised.',
    fixed: {
      name: 'read_exact',
      code: `ssize_t read_exact(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < n) {
		ssize_t r = read(fd, p + done, n - done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}`,
    },
  },
  {
    project: 'textutil',
    fileName: 'case.c',
    cwe: 'CWE-787',
    summary: 'case: bounded lower-casing copy',
    cveDesc: 'textutil 0.4 lower-cased strings into fixed buffers without a bound.',
    fixed: {
      name: 'str_lower_copy',
      code: `size_t str_lower_copy(char *dst, size_t dst_size, const char *src)
{
	size_t i = 0;

	if (dst_size == 0)
		return 0;
	while (src[i] != '\\0' && i + 1 < dst_size) {
		dst[i] = (char)tolower((unsigned char)src[i]);
		i++;
	}
	dst[i] = '\\0';
	return i;
}`,
    },
  },
  {
    project: 'numlib',
    fileName: 'safemath.c',
    cwe: 'CWE-190',
    summary: 'safemath: add checked size multiplication',
    cveDesc: 'numlib 0.9 multiplied allocation sizes without overflow checks.',
    fixed: {
      name: 'size_mul_checked',
      code: `bool size_mul_checked(size_t a, size_t b, size_t *out)
{
	if (a != 0 && b > SIZE_MAX / a)
		return false;
	*out = a * b;
	return true;
}`,
    },
  },
];

// Few-shot examples: never rows of the evaluated set (different idx range and functions).
const FEW_SHOT: FewShot[] = [
  {
    target: 1,
    project: 'recstore',
    fileName: 'record.c',
    cwe: 'CWE-787',
    summary: 'record: validate the stored payload length',
    cveDesc: 'record_read in recstore 0.2 trusts a length field from disk when filling a 128-byte payload.',
    fn: {
      name: 'record_read',
      code: `int record_read(int fd, struct record *r)
{
	uint32_t len;

	if (read(fd, &len, sizeof(len)) != sizeof(len))
		return -1;
	if (read(fd, r->payload, len) != (ssize_t)len)
		return -1;
	r->len = len;
	return 0;
}`,
    },
    explanation:
      'The length comes from the file and is never compared with sizeof(r->payload), so read() can write past the 128-byte payload array (heap/stack overflow).',
  },
  {
    target: 1,
    project: 'msgq',
    fileName: 'frame.c',
    cwe: 'CWE-190',
    summary: 'frame: widen the allocation size',
    cveDesc: 'frame_copy in msgq 1.1 computes len + 1 in 16 bits, so a 65535-byte frame allocates zero bytes.',
    fn: {
      name: 'frame_copy',
      code: `char *frame_copy(const char *src, unsigned short len)
{
	unsigned short total = len + 1;
	char *p = malloc(total);

	if (!p)
		return NULL;
	memcpy(p, src, len);
	p[len] = '\\0';
	return p;
}`,
    },
    explanation:
      'For len = 65535, total wraps to 0 in unsigned short arithmetic; malloc(0) succeeds and memcpy writes 65535 bytes into it: an integer overflow leading to a heap overflow.',
  },
  {
    target: 0,
    project: 'logfmt',
    fileName: 'append.c',
    cwe: 'CWE-787',
    summary: 'append: bounded append helper',
    cveDesc: 'logfmt 0.3 appended fields without bounds; this helper replaced those calls.',
    fn: {
      name: 'buf_append',
      code: `int buf_append(char *buf, size_t size, size_t *used, const char *s)
{
	size_t len = strlen(s);

	if (*used >= size || len >= size - *used)
		return -1;
	memcpy(buf + *used, s, len + 1);
	*used += len;
	return 0;
}`,
    },
    explanation:
      'The check len >= size - *used runs only after *used < size is known, so the subtraction cannot wrap, and the copy including the terminator always fits.',
  },
  {
    target: 0,
    project: 'textutil',
    fileName: 'count.c',
    cwe: 'CWE-125',
    summary: 'count: stop at the terminator',
    cveDesc: 'textutil 0.4 counted characters past the end of unterminated inputs.',
    fn: {
      name: 'count_char',
      code: `size_t count_char(const char *s, size_t max_len, char c)
{
	size_t i, n = 0;

	for (i = 0; i < max_len && s[i] != '\\0'; i++)
		if (s[i] == c)
			n++;
	return n;
}`,
    },
    explanation:
      'The loop is bounded both by max_len and by the NUL terminator, and only reads s[i]; there is no write and no out-of-bounds access.',
  },
];

type Value = string | number | bigint | null | readonly string[];

const ORG_URL = 'https://github.com/synthetic-vultrial';

function hex(kind: string, data: string, algo: 'sha1' | 'sha256' = 'sha1'): string {
  return createHash(algo).update(`${kind}:${data}`).digest('hex');
}

// PrimeVul hashes are 64- to 128-bit integers; they exceed JS numbers, so they are written as raw digits.
function bigHash(kind: string, data: string): bigint {
  return BigInt(`0x${hex(kind, data, 'sha256').slice(0, 32)}`);
}

function row(args: {
  idx: number;
  c: Pick<Case, 'project' | 'fileName' | 'cwe' | 'summary' | 'cveDesc'>;
  cveNumber: number;
  commitKey: string;
  target: 0 | 1;
  fn: Fn;
  extra?: Record<string, Value>;
}): Record<string, Value> {
  const { c } = args;
  const commitId = hex('commit', args.commitKey);
  const cve = `CVE-2099-${String(args.cveNumber).padStart(5, '0')}`;
  const hasExtension = c.fileName.includes('.');
  return {
    idx: args.idx,
    project: c.project,
    commit_id: commitId,
    project_url: `${ORG_URL}/${c.project}`,
    commit_url: `${ORG_URL}/${c.project}/commit/${commitId}`,
    commit_message: `${c.summary}\n\nReported-by: Synthetic Fuzzer <fuzz@example.invalid>\nSigned-off-by: Sandbox Maintainer <maint@example.invalid>`,
    target: args.target,
    func: args.fn.code,
    func_hash: bigHash('func', args.fn.code),
    file_name: c.fileName,
    // In the real file file_hash is null exactly when the file name has no extension.
    file_hash: hasExtension ? bigHash('file', `${c.project}/${c.fileName}`) : null,
    cwe: [c.cwe],
    cve,
    cve_desc: c.cveDesc,
    nvd_url: `https://nvd.nist.gov/vuln/detail/${cve}`,
    ...args.extra,
  };
}

// Python's json.dumps layout (", " and ": " separators, ASCII only), which the real file uses.
function pyJson(obj: Record<string, Value>): string {
  const value = (v: Value): string => {
    if (v === null) return 'null';
    if (typeof v === 'bigint' || typeof v === 'number') return v.toString();
    if (typeof v === 'string') return JSON.stringify(v);
    return `[${v.map((s) => JSON.stringify(s)).join(', ')}]`;
  };
  const line = `{${Object.entries(obj)
    .map(([k, v]) => `${JSON.stringify(k)}: ${value(v)}`)
    .join(', ')}}`;
  if (!/^[\x20-\x7e]*$/.test(line)) throw new Error(`non-ASCII or control character in row ${String(obj.idx)}`);
  return line;
}

function buildDataset(): string[] {
  const rows: Record<string, Value>[] = [];
  let cveNumber = 31000;
  PAIRS.forEach((c, i) => {
    const base = 240000 + i * 7919; // adjacent idx for the two halves of a pair, as in PrimeVul
    cveNumber += 17;
    if (!c.vulnerable || !c.fixed) throw new Error(`pair ${c.project} needs both functions`);
    const commitKey = `${c.project}/${c.fileName}/${c.summary}`;
    rows.push(row({ idx: base, c, cveNumber, commitKey, target: 1, fn: c.vulnerable }));
    rows.push(row({ idx: base + 1, c, cveNumber, commitKey, target: 0, fn: c.fixed }));
  });
  SINGLES.forEach((c, i) => {
    cveNumber += 17;
    const fn = c.vulnerable ?? c.fixed;
    if (!fn || (c.vulnerable && c.fixed)) throw new Error(`single ${c.project} needs exactly one function`);
    const commitKey = `${c.project}/${c.fileName}/${c.summary}`;
    rows.push(row({ idx: 380000 + i * 4211, c, cveNumber, commitKey, target: c.vulnerable ? 1 : 0, fn }));
  });
  // A fixed shuffle (sort by a hash of idx), so pairs are not always adjacent in the file.
  const lines = rows
    .map((r) => ({ key: hex('order', String(r.idx)), line: pyJson(r) }))
    .sort((a, b) => (a.key < b.key ? -1 : 1))
    .map((r) => r.line);
  // Two byte-identical benign duplicates further down, as the real file has (its dedupe keeps the first copy).
  const benign = lines.filter((l) => l.includes('"target": 0'));
  const [dupA, dupB] = [benign[3], benign[11]];
  if (dupA === undefined || dupB === undefined) throw new Error('not enough benign rows');
  lines.splice(30, 0, dupA);
  lines.push(dupB);
  return lines;
}

function buildFewShot(): string[] {
  return FEW_SHOT.map((f, i) =>
    pyJson(
      row({
        idx: 910000 + i * 13,
        c: f,
        cveNumber: 47000 + i * 23,
        commitKey: `few-shot/${f.project}/${f.fn.name}`,
        target: f.target,
        fn: f.fn,
        extra: { explanation: f.explanation },
      }),
    ),
  );
}

const root = fileURLToPath(new URL('..', import.meta.url));
const outputs: [string, string[]][] = [
  ['data/synthetic-vultrial.jsonl', buildDataset()],
  ['prompts/few-shot-examples.jsonl', buildFewShot()],
];
const check = process.argv.includes('--check');
let stale = false;
for (const [rel, lines] of outputs) {
  const text = `${lines.join('\n')}\n`;
  if (check) {
    let current: string;
    try {
      current = readFileSync(`${root}${rel}`, 'utf8');
    } catch {
      current = '';
    }
    if (current !== text) {
      console.error(`${rel} is out of date; run: npx tsx scripts/make-synthetic-dataset.ts`);
      stale = true;
    }
  } else {
    writeFileSync(`${root}${rel}`, text);
    console.log(`wrote ${rel} (${lines.length} lines)`);
  }
}
if (stale) process.exitCode = 1;
