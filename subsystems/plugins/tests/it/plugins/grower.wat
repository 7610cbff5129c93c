;; A memory grower: `transform` grows its memory one page at a time until the host refuses.
;; The module allows 64 MiB (within policy); its manifest asks for 2 MiB, which the store
;; limits enforce.
(module
  (memory (export "memory") 1 1024)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "transform") (param i32 i32) (result i64)
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (i64.const 0)))
