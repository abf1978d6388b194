/** The image gateway's API as the CLI calls it. */
import {
  Image,
  ImageJob,
  ImageList,
  ImageLookupResponse,
  ImageRoutes,
  PullImageResponse,
  routePath,
} from '@flotilla/protocol';
import type { PullImageRequest } from '@flotilla/protocol';
import type { ApiClient } from './client.js';

export interface ImageSelector {
  image: string;
  platform?: string | undefined;
  arch?: string | undefined;
}

export const pullImage = (c: ApiClient, req: PullImageRequest) =>
  c.request('POST', ImageRoutes.pull, PullImageResponse, { body: req });
export const listImages = (c: ApiClient, platform: string | undefined) =>
  c.request('GET', ImageRoutes.images, ImageList, { query: { platform } });
export const showImage = (c: ApiClient, sel: ImageSelector) =>
  c.request('GET', ImageRoutes.show, Image, { query: { ...sel } });
export const lookupImage = (c: ApiClient, sel: ImageSelector) =>
  c.request('GET', ImageRoutes.lookup, ImageLookupResponse, { query: { ...sel } });
export const removeImage = (c: ApiClient, sel: ImageSelector) =>
  c.requestVoid('DELETE', ImageRoutes.images, { query: { ...sel } });
export const getImageJob = (c: ApiClient, id: string) =>
  c.request('GET', routePath(ImageRoutes.job, { id }), ImageJob);
