//! A member device or image file, opened for the tool's exclusive use.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// An open member device (or regular image file).
pub struct Device {
    pub path: PathBuf,
    file: File,
    pub size: u64,
}

/// `BLKGETSIZE64`: `_IOR(0x12, 114, size_t)`.
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;

impl Device {
    /// Opens `path` read-write. Block devices are opened `O_EXCL`, which fails with `EBUSY`
    /// while they are mounted or otherwise claimed.
    pub fn open(path: &Path, write: bool) -> Result<Device, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let is_block = meta.file_type().is_block_device();
        let mut oo = OpenOptions::new();
        oo.read(true).write(write);
        if is_block && write {
            oo.custom_flags(libc::O_EXCL);
        }
        let file = oo.open(path).map_err(|e| match e.raw_os_error() {
            Some(libc::EBUSY) => format!("{}: device is in use (mounted?)", path.display()),
            _ => format!("{}: {e}", path.display()),
        })?;
        let size = if is_block {
            let mut size: u64 = 0;
            // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which is valid.
            let r = unsafe {
                libc::ioctl(
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    BLKGETSIZE64,
                    &mut size,
                )
            };
            if r != 0 {
                return Err(format!(
                    "{}: cannot get size: {}",
                    path.display(),
                    io::Error::last_os_error()
                ));
            }
            size
        } else if meta.is_file() {
            meta.len()
        } else {
            return Err(format!(
                "{}: not a block device or regular file",
                path.display()
            ));
        };
        Ok(Device {
            path: path.to_owned(),
            file,
            size,
        })
    }

    pub fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<(), String> {
        self.file
            .read_exact_at(buf, off)
            .map_err(|e| format!("{}: read at {off}: {e}", self.path.display()))
    }

    pub fn write_at(&self, off: u64, buf: &[u8]) -> Result<(), String> {
        self.file
            .write_all_at(buf, off)
            .map_err(|e| format!("{}: write at {off}: {e}", self.path.display()))
    }

    pub fn sync(&self) -> Result<(), String> {
        self.file
            .sync_all()
            .map_err(|e| format!("{}: sync: {e}", self.path.display()))
    }
}
