export { DOWNLOAD_BYTES, downloadSha256, startDemoGroupware, type DemoGroupware, type DemoGroupwareOptions } from './groupware.js';
