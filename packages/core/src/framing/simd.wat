;; The byte compares of large chunks, sixteen bytes per instruction: WebAssembly's 128-bit SIMD, which
;; JavaScript does not have. `run` compares events against an event template (dialects/template.ts),
;; `frames` event stream frames against the last one that passed (eventstream.ts). simd.ts copies the
;; template or pattern and a window of the chunk into this module's memory and calls them;
;; docs/architecture.md#the-simd-kernel says why and what it costs. `pnpm --filter @usagewire/core kernel`
;; assembles this file into simd.bytes.ts, and simd.test.ts checks that the two agree.
;;
;; Memory (laid out by template-kernel.ts):
;;   [0, 128)    1 for each byte that may follow a backslash in a JSON string, other than `u` ("\/bfnrt)
;;   [128, 384)  1 for each hexadecimal digit, indexed by byte
;;   [384, 392)  what the last `run` found (i32, little-endian): how many events matched, and 1 when it
;;               stopped at an event cut off by `limit` (more bytes might make it match), 0 when it
;;               stopped at one that does not match whatever follows
;;   template    the n part lengths (i32, little-endian), then the parts' bytes, one after another; or
;;               the bytes a frame's headers must begin with
;;   window      the bytes of the chunk being matched, followed by at least 16 bytes of room: the
;;               compare of a part's last bytes reads 16 and masks off the ones after it
;;
;; Positions are offsets into the memory. A part ends with the opening quote of a free string and the next
;; begins with its closing quote; the free string may hold any valid JSON string body (RFC 8259 §7).
(module
  (memory (export "memory") 2)

  ;; The closing quote of the string body that starts at $p: -1 when it is not a valid one, -2 when
  ;; `limit` comes first.
  (func $stringEnd (param $p i32) (param $limit i32) (result i32)
    (local $v v128) (local $m i32) (local $b i32) (local $e i32)
    (loop $scan
      (if (i32.le_u (i32.add (local.get $p) (i32.const 16)) (local.get $limit))
        (then
          ;; Sixteen bytes: where is the first quote, backslash or control byte?
          (local.set $v (v128.load (local.get $p)))
          (local.set $m (i8x16.bitmask (v128.or (v128.or
            (i8x16.eq (local.get $v) (i8x16.splat (i32.const 0x22)))
            (i8x16.eq (local.get $v) (i8x16.splat (i32.const 0x5c))))
            (i8x16.lt_u (local.get $v) (i8x16.splat (i32.const 0x20))))))
          (if (i32.eqz (local.get $m))
            (then
              (local.set $p (i32.add (local.get $p) (i32.const 16)))
              (br $scan)))
          (local.set $p (i32.add (local.get $p) (i32.ctz (local.get $m)))))
        (else
          ;; The last bytes before `limit`, one at a time.
          (if (i32.ge_u (local.get $p) (local.get $limit)) (then (return (i32.const -2))))
          (local.set $b (i32.load8_u (local.get $p)))
          (if (i32.and
                (i32.and (i32.ne (local.get $b) (i32.const 0x22)) (i32.ne (local.get $b) (i32.const 0x5c)))
                (i32.ge_u (local.get $b) (i32.const 0x20)))
            (then
              (local.set $p (i32.add (local.get $p) (i32.const 1)))
              (br $scan)))))
      (local.set $b (i32.load8_u (local.get $p)))
      (if (i32.eq (local.get $b) (i32.const 0x22)) (then (return (local.get $p))))
      (if (i32.lt_u (local.get $b) (i32.const 0x20)) (then (return (i32.const -1))))
      ;; A backslash: `\u` and four hexadecimal digits, or one of the escapes.
      (if (i32.ge_u (i32.add (local.get $p) (i32.const 1)) (local.get $limit)) (then (return (i32.const -2))))
      (local.set $e (i32.load8_u offset=1 (local.get $p)))
      (if (i32.eq (local.get $e) (i32.const 0x75))
        (then
          (if (i32.gt_u (i32.add (local.get $p) (i32.const 6)) (local.get $limit)) (then (return (i32.const -2))))
          (if (i32.eqz (i32.and
                (i32.and
                  (i32.load8_u offset=128 (i32.load8_u offset=2 (local.get $p)))
                  (i32.load8_u offset=128 (i32.load8_u offset=3 (local.get $p))))
                (i32.and
                  (i32.load8_u offset=128 (i32.load8_u offset=4 (local.get $p)))
                  (i32.load8_u offset=128 (i32.load8_u offset=5 (local.get $p))))))
            (then (return (i32.const -1))))
          (local.set $p (i32.add (local.get $p) (i32.const 6)))
          (br $scan)))
      (if (i32.ge_u (local.get $e) (i32.const 128)) (then (return (i32.const -1))))
      (if (i32.eqz (i32.load8_u (local.get $e))) (then (return (i32.const -1))))
      (local.set $p (i32.add (local.get $p) (i32.const 2)))
      (br $scan))
    (unreachable))

  ;; 1 when the $length bytes at $p are those at $t: thirty-two a turn, then sixteen, then the rest in one
  ;; more compare of sixteen, masked to what is left (the memory has room for the bytes read past both).
  (func $equal (param $p i32) (param $t i32) (param $length i32) (result i32)
    (local $k i32) (local $mask i32)
    (block $pairs
      (loop $pair
        (br_if $pairs (i32.gt_u (i32.add (local.get $k) (i32.const 32)) (local.get $length)))
        (if (v128.any_true (v128.or
              (v128.xor
                (v128.load (i32.add (local.get $p) (local.get $k)))
                (v128.load (i32.add (local.get $t) (local.get $k))))
              (v128.xor
                (v128.load offset=16 (i32.add (local.get $p) (local.get $k)))
                (v128.load offset=16 (i32.add (local.get $t) (local.get $k))))))
          (then (return (i32.const 0))))
        (local.set $k (i32.add (local.get $k) (i32.const 32)))
        (br $pair)))
    (if (i32.le_u (i32.add (local.get $k) (i32.const 16)) (local.get $length))
      (then
        (if (v128.any_true (v128.xor
              (v128.load (i32.add (local.get $p) (local.get $k)))
              (v128.load (i32.add (local.get $t) (local.get $k)))))
          (then (return (i32.const 0))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))))
    (local.set $mask (i32.sub (i32.shl (i32.const 1) (i32.sub (local.get $length) (local.get $k))) (i32.const 1)))
    (i32.eq (local.get $mask)
      (i32.and (local.get $mask) (i8x16.bitmask (i8x16.eq
        (v128.load (i32.add (local.get $p) (local.get $k)))
        (v128.load (i32.add (local.get $t) (local.get $k))))))))

  ;; The end of the event at $p when it is the template's bytes with valid strings in the free places:
  ;; -1 when it is not, -2 when `limit` comes first.
  (func $match (param $p i32) (param $limit i32) (param $template i32) (param $n i32) (result i32)
    (local $i i32) (local $t i32) (local $length i32)
    (local.set $t (i32.add (local.get $template) (i32.shl (local.get $n) (i32.const 2))))
    (loop $parts
      (local.set $length (i32.load (i32.add (local.get $template) (i32.shl (local.get $i) (i32.const 2)))))
      (if (i32.gt_u (i32.add (local.get $p) (local.get $length)) (local.get $limit)) (then (return (i32.const -2))))
      (if (i32.eqz (call $equal (local.get $p) (local.get $t) (local.get $length))) (then (return (i32.const -1))))
      (local.set $p (i32.add (local.get $p) (local.get $length)))
      (local.set $t (i32.add (local.get $t) (local.get $length)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (if (i32.eq (local.get $i) (local.get $n)) (then (return (local.get $p))))
      (local.set $p (call $stringEnd (local.get $p) (local.get $limit)))
      (if (i32.lt_s (local.get $p) (i32.const 0)) (then (return (local.get $p))))
      (br $parts))
    (unreachable))

  ;; Where the run of events from $at that match ends ($at when the first does not); [384, 392) says how
  ;; many matched and why it stopped.
  (func (export "run") (param $at i32) (param $limit i32) (param $template i32) (param $n i32) (result i32)
    (local $ran i32) (local $end i32)
    (loop $events
      (local.set $end (call $match (local.get $at) (local.get $limit) (local.get $template) (local.get $n)))
      (if (i32.ge_s (local.get $end) (i32.const 0))
        (then
          (local.set $ran (i32.add (local.get $ran) (i32.const 1)))
          (local.set $at (local.get $end))
          (br $events))))
    (i32.store offset=384 (i32.const 0) (local.get $ran))
    (i32.store offset=388 (i32.const 0) (i32.eq (local.get $end) (i32.const -2)))
    (local.get $at))

  ;; A big-endian uint32, as the event stream writes its lengths.
  (func $u32 (param $p i32) (result i32)
    (local $x i32)
    (local.set $x (i32.load (local.get $p)))
    (i32.or
      (i32.or (i32.shl (local.get $x) (i32.const 24)) (i32.and (i32.shl (local.get $x) (i32.const 8)) (i32.const 0xff0000)))
      (i32.or (i32.and (i32.shr_u (local.get $x) (i32.const 8)) (i32.const 0xff00)) (i32.shr_u (local.get $x) (i32.const 24)))))

  ;; Where the run of event stream frames from $at that are like the last one passed ends: each whole
  ;; before $limit, $least to $most bytes long, with $headers as its headers' length, and its headers
  ;; beginning with the $length bytes at $head. [384, 392) says how many and why it stopped, as for `run`.
  (func (export "frames") (param $at i32) (param $limit i32) (param $least i32) (param $most i32)
      (param $headers i32) (param $head i32) (param $length i32) (result i32)
    (local $ran i32) (local $total i32) (local $short i32)
    (block $out
      (loop $frames
        (if (i32.gt_u (i32.add (local.get $at) (i32.const 4)) (local.get $limit))
          (then (local.set $short (i32.const 1)) (br $out)))
        (local.set $total (call $u32 (local.get $at)))
        (br_if $out (i32.or (i32.lt_u (local.get $total) (local.get $least)) (i32.gt_u (local.get $total) (local.get $most))))
        (if (i32.gt_u (local.get $total) (i32.sub (local.get $limit) (local.get $at)))
          (then (local.set $short (i32.const 1)) (br $out)))
        (br_if $out (i32.ne (call $u32 (i32.add (local.get $at) (i32.const 4))) (local.get $headers)))
        (br_if $out (i32.eqz (call $equal (i32.add (local.get $at) (i32.const 12)) (local.get $head) (local.get $length))))
        (local.set $ran (i32.add (local.get $ran) (i32.const 1)))
        (local.set $at (i32.add (local.get $at) (local.get $total)))
        (br $frames)))
    (i32.store offset=384 (i32.const 0) (local.get $ran))
    (i32.store offset=388 (i32.const 0) (local.get $short))
    (local.get $at))
)
