pub mod alloc;
pub mod draws;
