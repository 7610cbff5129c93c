;; The well-behaved sample plugin: upper-cases ASCII text, prefixed by its `prefix` setting,
;; and logs what it did. Also exports `add` (a trivial call) and `spin` (a compute loop).
(module
  (import "ide" "log" (func $log (param i32 i32 i32)))
  (import "ide" "config_get" (func $config_get (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 16)
  ;; Where the next allocation goes; reset by every `alloc`, since the host calls `alloc`
  ;; once before each `transform` and nothing survives between transforms.
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 0) "prefix")
  (data (i32.const 16) "transformed text")

  ;; Grows memory until byte offset $end fits; traps when the host refuses.
  (func $ensure (param $end i32)
    (block $done
      (loop $grow
        (br_if $done (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow))))

  (func (export "alloc") (param $len i32) (result i32)
    (global.set $heap
      (i32.add (i32.const 1024) (i32.and (i32.add (local.get $len) (i32.const 7)) (i32.const -8))))
    (call $ensure (global.get $heap))
    (i32.const 1024))

  (func (export "transform") (param $ptr i32) (param $len i32) (result i64)
    (local $out i32) (local $plen i32) (local $i i32) (local $c i32)
    (local.set $out (global.get $heap))
    (call $ensure (i32.add (local.get $out) (i32.add (local.get $len) (i32.const 64))))
    (local.set $plen
      (call $config_get (i32.const 0) (i32.const 6) (local.get $out) (i32.const 64)))
    (if (i32.lt_s (local.get $plen) (i32.const 0)) (then (local.set $plen (i32.const 0))))
    (if (i32.gt_s (local.get $plen) (i32.const 64)) (then (local.set $plen (i32.const 64))))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $c (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
          (then (local.set $c (i32.sub (local.get $c) (i32.const 32)))))
        (i32.store8
          (i32.add (i32.add (local.get $out) (local.get $plen)) (local.get $i))
          (local.get $c))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))
    (call $log (i32.const 1) (i32.const 16) (i32.const 16))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (i32.add (local.get $plen) (local.get $len)))))

  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1)))

  ;; A compute loop of $n iterations (the fuel and epoch slowdown scenarios).
  (func (export "spin") (param $n i32) (result i32)
    (local $acc i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))
    (local.get $acc)))
