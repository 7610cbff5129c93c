;; A plugin that never returns: `transform` and `run` loop forever. The sandbox's epoch
;; deadline (or fuel) is what stops it.
(module
  (memory (export "memory") 1 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func $forever
    (loop $l (br $l)))
  (func (export "transform") (param i32 i32) (result i64)
    (call $forever)
    (i64.const 0))
  (func (export "run")
    (call $forever)))
