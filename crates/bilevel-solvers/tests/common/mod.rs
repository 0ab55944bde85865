pub mod draws;
